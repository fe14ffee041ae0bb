"""Search analytics writes: clicks on results."""

from __future__ import annotations

import uuid

from inbo.errors import InvalidInput
from search_app.models import SearchClick, SearchLog


def click_record(*, search_id: uuid.UUID, object_id: int, position: int) -> bool:
    """Record that result ``object_id`` at ``position`` (1-based) of search ``search_id`` was
    opened. A second click on the same result is ignored; returns whether it was new.
    An unknown search is invalid input (``search_id``)."""
    search = SearchLog.objects.filter(search_id=search_id).only("id").first()
    if search is None:
        raise InvalidInput("Unknown search_id.", details={"search_id": ["No search with this id."]})
    _, created = SearchClick.objects.get_or_create(
        search=search, object_id=object_id, defaults={"position": position}
    )
    return created
