"""Every error under ``/api/`` in the JSON envelope, whatever produced it, DEBUG included.

DRF views already answer in the envelope (``inbo.api.errors.api_exception_handler``). What
is left is Django's own pages: the URL resolver's 404, a 400 for a disallowed host, the CSRF
403, and every 500 — which with ``DEBUG=true`` are HTML debug pages (``handler404`` and
``handler500`` are not used then). This middleware, outermost, rewrites them; paths outside
``/api/`` (admin, health) keep Django's pages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import Resolver404, get_resolver
from django.utils.module_loading import import_string

from inbo.api.errors import (
    DATABASE_UNAVAILABLE,
    database_unavailable,
    error_body,
    is_database_unavailable,
    service_unavailable_response,
    status_error,
)
from inbo.api.http_cache import default_cache_control
from inbo.errors import ServiceUnavailable

API_PREFIX = "/api/"
_EXCEPTION_ATTR = "_inbo_unhandled_exception"
_NOT_CARRIED = {"content-type", "content-length"}


def is_api_path(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


@receiver(got_request_exception, dispatch_uid="inbo.api.middleware.remember_exception")
def _remember_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Keep the exception Django is turning into a 500, for the middleware to describe.

    A middleware never sees an exception raised inside another middleware: Django converts
    it into a response at each layer. It does send this signal first, while handling it.
    """
    if request is not None:
        setattr(request, _EXCEPTION_ATTR, sys.exc_info()[1])


def _is_json(response: HttpResponseBase) -> bool:
    media_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _is_browsable_api(response: HttpResponseBase) -> bool:
    """DRF's HTML rendering of an envelope, for a browser that asked for HTML: left alone."""
    renderer = getattr(response, "accepted_renderer", None)
    return getattr(renderer, "format", None) == "api"


def _carry_over(original: HttpResponseBase, replacement: HttpResponse) -> HttpResponse:
    """Headers that still hold (Allow, WWW-Authenticate, Retry-After, Vary...) and cookies."""
    for name, value in original.items():
        if name.lower() not in _NOT_CARRIED and name not in replacement:
            replacement[name] = value
    replacement.cookies.update(original.cookies)
    return replacement


def _resolves(path: str, urlconf: Any) -> bool:
    try:
        get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    return True


def _missing_slash(request: HttpRequest) -> JsonResponse | None:
    """A write to an API path without its trailing slash: a 404 that names the right path.

    Django's APPEND_SLASH would redirect it, dropping the body (or, with DEBUG, raise a
    RuntimeError); a client that sent a body deserves to know what to fix, in every mode.
    """
    path = request.path_info
    if (
        request.method in ("GET", "HEAD", "OPTIONS")
        or not settings.APPEND_SLASH
        or not path.startswith(API_PREFIX)
        or path.endswith("/")
    ):
        return None
    urlconf = getattr(request, "urlconf", None)
    if _resolves(path, urlconf) or not _resolves(f"{path}/", urlconf):
        return None
    return JsonResponse(
        error_body(
            "not_found",
            "No such endpoint: API paths end with a slash.",
            {"path": f"{request.path}/"},
        ),
        status=404,
    )


class ApiErrorEnvelopeMiddleware:
    """Outermost: a 4xx/5xx that is not JSON, under ``/api/``, becomes the envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        missing_slash = _missing_slash(request)
        if missing_slash is not None:
            return default_cache_control(request, missing_slash)
        response = self.get_response(request)
        if not is_api_path(request):
            return response
        # Nothing under /api/ is stored by any cache unless its view said so (catalog).
        default_cache_control(request, response)
        if response.status_code < 400:
            return response
        exc = getattr(request, _EXCEPTION_ATTR, None)
        if response.status_code == 500 and is_database_unavailable(exc):
            # Raised outside a view (a middleware reading the session, say).
            unavailable = service_unavailable_response(ServiceUnavailable(DATABASE_UNAVAILABLE))
            return _carry_over(response, unavailable)
        if _is_json(response) or _is_browsable_api(response):
            return response
        details = None
        if settings.DEBUG and exc is not None:
            # What the debug page would have said first; the traceback is in the log.
            details = {"exception": f"{type(exc).__name__}: {exc}"}
        return _carry_over(response, status_error(response.status_code, details))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A database outage in a view outside DRF: 503 (DRF views map it themselves)."""
        if is_api_path(request) and is_database_unavailable(exception):
            return service_unavailable_response(database_unavailable(exception))
        return None


# --- Browser middleware, kept off the API where a request does not need it ---------------
# An API client sends "Authorization: Token ...": it has no session, never sees a flash
# message and its JSON is never framed. Sessions stay for the API calls that use them (the
# browsable API, staff signed in to the admin: they carry the session cookie) and CSRF stays
# everywhere (DRF's SessionAuthentication checks it; the browsable API needs its cookie).


def _token_request(request: HttpRequest) -> bool:
    """An API request that authenticates with a token and carries no session cookie."""
    return (
        is_api_path(request)
        and "HTTP_AUTHORIZATION" in request.META
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
    )


def _skipped_when(predicate: Callable[[HttpRequest], bool], middleware: str) -> type[Any]:
    """``middleware``, except on requests ``predicate`` picks: those go straight to the next
    one. A subclass, so Django's checks (the admin's) still find the middleware they need.
    Only for middleware without view hooks (``process_view``...), which Django calls apart."""
    base = import_string(middleware)
    hooks = ("process_view", "process_exception", "process_template_response")
    assert not any(hasattr(base, hook) for hook in hooks), middleware

    class Skipped(base):  # type: ignore[misc, valid-type]
        def __call__(self, request: HttpRequest) -> HttpResponseBase:
            if predicate(request):
                return self.get_response(request)
            return super().__call__(request)

    Skipped.__name__ = Skipped.__qualname__ = base.__name__
    Skipped.__doc__ = f"``{middleware}``, skipped by ``{predicate.__name__}``."
    return Skipped


# Not run for token-authenticated API requests (no session cookie): SessionMiddleware and
# AuthenticationMiddleware (DRF sets request.user itself once the token authenticated).
SessionMiddleware = _skipped_when(
    _token_request, "django.contrib.sessions.middleware.SessionMiddleware"
)
AuthenticationMiddleware = _skipped_when(
    _token_request, "django.contrib.auth.middleware.AuthenticationMiddleware"
)
# Not run under /api/ at all: nothing there reads or adds flash messages.
MessageMiddleware = _skipped_when(
    is_api_path, "django.contrib.messages.middleware.MessageMiddleware"
)
