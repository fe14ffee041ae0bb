"""The personalized home feed: what views and other services call.

- :mod:`.build` ranks a feed into typed sections (``Feed``, ``Section``, ``Entry``);
- :mod:`.cache` keeps it per user in Redis and serves it page by page (home JSON, section
  pages, cursors, invalidation on the user's feedback);
- :mod:`.served_log` logs every served page with the signals its items were ranked on.
"""

from __future__ import annotations

from experience_app.services.feed.build import SECTION_ORDER, Entry, Feed, Section, build_feed
from experience_app.services.feed.cache import (
    decode_cursor,
    home,
    home_json,
    invalidate,
    section_page,
)

__all__ = [
    "SECTION_ORDER",
    "Entry",
    "Feed",
    "Section",
    "build_feed",
    "decode_cursor",
    "home",
    "home_json",
    "invalidate",
    "section_page",
]
