"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

``details`` is always an object, whatever raised the error (the OpenAPI ``Error`` schema).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from inbo.api.parsers import PayloadTooLarge
from inbo.errors import ApplicationError, ServiceUnavailable

logger = logging.getLogger("inbo.api")

_MESSAGES = {
    "invalid": "Some fields are not valid.",
    "parse_error": "The request body is not valid JSON.",
}

# Code and message of an error response that only has a status (Django's own 4xx/5xx pages,
# rewritten by inbo.api.middleware); other statuses use their HTTP reason phrase.
_BY_STATUS = {
    400: ("bad_request", "Bad request."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "No such endpoint."),
    405: ("method_not_allowed", "Method not allowed."),
    406: ("not_acceptable", "Could not satisfy the request Accept header."),
    413: ("payload_too_large", "The request body is too large."),
    414: ("uri_too_long", "The request URL is too long."),
    415: ("unsupported_media_type", "Unsupported media type; send application/json."),
    429: ("throttled", "Too many requests."),
    500: ("server_error", "An unexpected error occurred; it has been logged."),
    503: ("service_unavailable", ServiceUnavailable.default_message),
}

DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly."


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": as_details(details)}}


def as_details(details: Any) -> dict[str, Any]:
    """``details`` as an object: a bare list names no field, other values become ``detail``."""
    if not details:
        return {}
    if isinstance(details, Mapping):
        return dict(details)
    if isinstance(details, list | tuple):
        return {"non_field_errors": list(details)}
    return {"detail": details}


def status_error(status_code: int, details: Any = None) -> JsonResponse:
    """The envelope for a bare status (no exception to describe)."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    code, message = _BY_STATUS.get(
        status_code, (phrase.lower().replace(" ", "_").replace("-", "_"), f"{phrase}.")
    )
    return JsonResponse(error_body(code, message, details), status=status_code)


def is_database_unavailable(exc: BaseException | None) -> bool:
    """A connection or server-side failure of PostgreSQL: transient, answered with 503.

    OperationalError covers refused and dropped connections, a server shutting down, out of
    shared memory and statement timeouts; InterfaceError a connection already closed. A bug
    in a query raises ProgrammingError or DataError instead and stays a 500.
    """
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable(exc: BaseException) -> ServiceUnavailable:
    logger.error("api.database_unavailable error=%s", exc, exc_info=exc)
    return ServiceUnavailable(DATABASE_UNAVAILABLE)


def service_unavailable_response(exc: ServiceUnavailable) -> JsonResponse:
    """A plain Django response for ``exc`` (outside DRF views): 503, Retry-After."""
    response = JsonResponse(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    response["Retry-After"] = str(retry_after(exc))
    return response


def retry_after(exc: ServiceUnavailable) -> int:
    """Seconds a client should wait: what the raiser knew, else ``API_RETRY_AFTER_SECONDS``."""
    return exc.retry_after if exc.retry_after is not None else settings.API_RETRY_AFTER_SECONDS


def _first_code(codes: Any) -> str | None:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and codes:
        return _first_code(next(iter(codes.values())))
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: typed application errors and DRF errors in one shape."""
    if is_database_unavailable(exc):
        set_rollback()
        exc = database_unavailable(exc)
    elif isinstance(exc, RequestDataTooBig):
        # Django's own body limit (DATA_UPLOAD_MAX_MEMORY_SIZE), hit when DRF reads the body.
        exc = PayloadTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
        if isinstance(exc, ServiceUnavailable):
            response["Retry-After"] = str(retry_after(exc))
        return response
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected exception: let it surface (logged, 500) rather than hide it

    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, list):
            detail = {"non_field_errors": detail}
        code = "invalid"
        message = _MESSAGES["invalid"]
        fields = ", ".join(str(k) for k in detail) if isinstance(detail, dict) else ""
        if fields:
            message = f"Invalid input in: {fields}."
        response.data = error_body(code, message, detail)
    else:
        code = _first_code(exc.get_codes()) or "error"
        message = _MESSAGES.get(code, str(exc.detail))
        # Our own API exceptions (inbo.api.parsers) say more than their message.
        details = as_details(getattr(exc, "details", None))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details["retry_after_seconds"] = int(exc.wait)
        response.data = error_body(code, message, details)
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404`` for URLs no route matched: JSON under /api/, same shape everywhere."""
    return JsonResponse(
        error_body("not_found", "No such endpoint."), status=status.HTTP_404_NOT_FOUND
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: the same shape, no internals; a database outage is a 503.

    Django calls it while handling the exception, so ``sys.exc_info()`` still names it.
    """
    exc = sys.exc_info()[1]
    if is_database_unavailable(exc):
        return service_unavailable_response(ServiceUnavailable(DATABASE_UNAVAILABLE))
    return JsonResponse(
        error_body("server_error", "An unexpected error occurred; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_permission_denied(
    request: HttpRequest, exception: Exception | None = None
) -> JsonResponse:
    return JsonResponse(
        error_body("permission_denied", "You do not have permission to perform this action."),
        status=403,
    )
