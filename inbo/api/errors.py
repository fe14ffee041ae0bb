"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from inbo.errors import ApplicationError

logger = logging.getLogger("inbo.api")

_MESSAGES = {
    "invalid": "Some fields are not valid.",
    "parse_error": "The request body is not valid JSON.",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


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
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
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
        details: dict[str, Any] = {}
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
    """``handler500``: the same shape, no internals."""
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
