"""OpenAPI pieces shared by every endpoint: the error envelope and its responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(),
            },
        )
    },
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented error responses of an endpoint, all in the shared envelope."""
    descriptions = {
        400: "Invalid input; `details` names the fields.",
        # Also on endpoints open to anonymous callers: a token that is sent is checked.
        401: "Not authenticated, or the credentials sent are not valid (expired token).",
        403: "Not allowed.",
        404: "Not found (or not yours).",
        409: "Conflict with the current state.",
        429: "Too many requests.",
    }
    return {s: OpenApiResponse(ErrorSerializer, description=descriptions[s]) for s in statuses}


AUTH_ERRORS = error_responses(401)

# A query parameter that takes a day (``2024-05-01``) or an ISO 8601 date-time.
DATE_OR_DATETIME = {
    "anyOf": [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
    ],
    "example": "2024-05-01",
}
# The same where an empty value means "no filter" (the catalog's django-filter filters).
# A boolean query parameter of the catalog, where (as for every catalog filter) an empty value
# means no filter.
BOOLEAN_OR_EMPTY = {
    "anyOf": [{"type": "boolean"}, {"type": "string", "maxLength": 0}],
    "example": True,
}

DATE_OR_DATETIME_OR_EMPTY = {
    "anyOf": [*DATE_OR_DATETIME["anyOf"], {"type": "string", "maxLength": 0}],
    "example": "2024-05-01",
}
