"""Typed application errors, raised by services and selectors of every app.

The API maps them once (``inbo.api.errors``) to ``{"error": {"code", "message", "details"}}``
with the status declared here; nothing else needs to know about HTTP.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """Base of every error INBO raises on purpose."""

    status_code = 400
    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details if details is not None else {}
        super().__init__(self.message)


class InvalidInput(ApplicationError):
    status_code = 400
    code = "invalid"
    default_message = "The input is not valid."


class InvalidCursor(InvalidInput):
    """A pagination cursor we did not issue (garbage, tampered, another list's)."""

    code = "invalid_cursor"
    default_message = "The cursor is not valid; start again from the first page."

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        if details is None:
            details = {"cursor": ["Not a valid cursor."]}
        super().__init__(message, details=details)


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class Forbidden(ApplicationError):
    status_code = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class ServiceUnavailable(ApplicationError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A dependency is unavailable; try again shortly."

    def __init__(
        self, message: str | None = None, *, details: Any = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, details=details)
        # Seconds after which a retry may succeed (the Retry-After header), when known.
        self.retry_after = retry_after
