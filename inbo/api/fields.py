"""Serializer fields stricter than DRF's own, for input a client could otherwise smuggle in."""

from __future__ import annotations

import re
import uuid
from typing import Any

from rest_framework import serializers

# A UUID as text: 8-4-4-4-12 hex digits with hyphens, or the 32 digits alone, any case.
UUID_TEXT = re.compile(
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
        if not isinstance(data, str) or not UUID_TEXT.fullmatch(data):
            self.fail("invalid", value=data)
        return uuid.UUID(data)


# Text that must say something, for the schema: no NUL (PostgreSQL text cannot hold one) and at
# least one character that is not whitespace as Python's str.strip() sees it, so that the schema
# and a trimmed, not blank CharField agree on what "blank" is (experiments_app spells the same).
_WHITESPACE = (
    "\\t\\n\\u000b\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{_WHITESPACE}][^\\u0000]*$"


class _JSONType(serializers.Field):
    """Only values of the JSON type the schema declares, checked before DRF coerces them.

    DRF's fields read leniently: a string field turns the number ``4.05e16`` into the text
    ``"4.05e16"`` (an account was created with that username), an integer field takes
    ``"12"`` and ``12.0``. The API takes JSON bodies only, so each value must arrive as the
    type its schema names.
    """

    json_types: tuple[type, ...] = (str,)
    default_error_messages = {"wrong_type": "Must be a JSON {json_type}."}
    json_type_name = "string"

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, self.json_types):
            self.fail("wrong_type", json_type=self.json_type_name)
        return super().to_internal_value(data)


class StrictCharField(_JSONType, serializers.CharField):
    """A JSON string (no number turned into text)."""


class StrictRegexField(_JSONType, serializers.RegexField):
    """A JSON string matching a pattern."""


class StrictEmailField(_JSONType, serializers.EmailField):
    """A JSON string holding an email address."""


class StrictSlugField(_JSONType, serializers.SlugField):
    """A JSON string holding a slug."""


class StrictChoiceField(_JSONType, serializers.ChoiceField):
    """A JSON string among the choices (``1`` does not pick the choice ``"1"``)."""


class StrictIntegerField(_JSONType, serializers.IntegerField):
    """A JSON integer: no ``"12"``, no ``12.0``, no ``true``."""

    json_types = (int,)
    json_type_name = "integer"


class StrictFloatField(_JSONType, serializers.FloatField):
    """A JSON number: no ``"1.5"``, no ``"nan"``, no ``true``."""

    json_types = (int, float)
    json_type_name = "number"


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: no ``"true"``, no ``1`` (DRF's field takes both)."""

    default_error_messages = {"wrong_type": "Must be a JSON boolean."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("wrong_type")
        return data
