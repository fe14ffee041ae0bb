"""The experiments_app facade: the only module other apps import from here.

So far it holds the statistics (issue 12, in progress: docs/dev/STATUS.md); how the app
meets the feed (assignment, exposures) is decided with the experiment models.
"""

from __future__ import annotations

__all__: list[str] = []
