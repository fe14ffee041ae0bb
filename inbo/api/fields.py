"""Serializer fields stricter than DRF's own, for input a client could otherwise smuggle in."""

from __future__ import annotations

import re
import uuid
from typing import Any

from rest_framework import serializers

# A UUID as text: 8-4-4-4-12 hex digits with hyphens, or the 32 digits alone, any case.
_UUID_TEXT = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", re.IGNORECASE
)


class StrictUUIDField(serializers.UUIDField):
    """A UUID that must arrive as a string in its canonical hex form.

    DRF's ``UUIDField`` also turns an integer into a UUID, and so a JSON boolean (``False``
    is the zero UUID, ``True`` is ``…0001``): a typo or a hostile client would store a made-up
    id. It also takes the ``urn:uuid:`` and braced forms, which no client of this API sends.
    """

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if isinstance(data, uuid.UUID):  # already parsed (called from Python, not JSON)
            return data
        if not isinstance(data, str) or not _UUID_TEXT.fullmatch(data):
            self.fail("invalid", value=data)
        return uuid.UUID(data)
