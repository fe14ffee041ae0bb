"""Pagination shared by every list endpoint: one rule for bad input (docs/API.md).

- ``page_size``: a whole number from 1 to the list's maximum. Anything else (``0``, ``-5``,
  ``abc``, ``1.5``, empty, over the maximum) is a 400 ``invalid`` naming ``page_size``.
- ``page``: a whole number from 1 to ``MAX_PAGE``, same rule; a page past the last one is
  an empty page (200), never an error: what lies past the end is nothing.
- ``cursor``: only what a ``next``/``previous`` link carried. Absent or empty means the
  first page; anything else we did not issue is a 400 ``invalid_cursor``.

Search and the home sections are not DRF lists but read the same fields (``page_field``,
``page_size_field``) and raise the same ``InvalidCursor``.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Page
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from inbo.errors import InvalidCursor

# Deepest page a page-number list accepts: far past any real list, and small enough that
# no offset computed from it can overflow anything.
MAX_PAGE = 1_000_000
# Ours are under 100 characters; a longer one was not issued by us.
MAX_CURSOR_LENGTH = 1000
# ASCII digits only: int() would also take " 5", "+5", "1_0" and other scripts' digits.
_DIGITS = re.compile(r"[0-9]{1,12}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class BoundedIntegerField(serializers.IntegerField):
    """A whole number from ``min_value`` to ``max_value`` written in plain digits, with one
    message for every way of missing it."""

    def __init__(self, *, min_value: int, max_value: int, **kwargs: Any) -> None:
        message = f"Must be a whole number from {min_value} to {max_value}."
        kwargs["error_messages"] = {
            key: message for key in ("invalid", "min_value", "max_value", "max_string_length")
        }
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or (isinstance(data, str) and not _DIGITS.fullmatch(data)):
            self.fail("invalid")
        return int(super().to_internal_value(data))


def page_field(*, maximum: int = MAX_PAGE, **kwargs: Any) -> BoundedIntegerField:
    kwargs.setdefault("help_text", "Page number, from 1; a page past the last one is empty.")
    return BoundedIntegerField(min_value=1, max_value=maximum, **kwargs)


def page_size_field(*, maximum: int, **kwargs: Any) -> BoundedIntegerField:
    kwargs.setdefault("help_text", f"Results per page, from 1 to {maximum}.")
    return BoundedIntegerField(min_value=1, max_value=maximum, **kwargs)


def query_int(request: Request, name: str, field: BoundedIntegerField, default: int) -> int:
    """The query parameter ``name`` read by ``field``; 400 ``invalid`` naming it if bad."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(field.run_validation(raw))
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from None


def _integer_parameter(name: str, description: str, maximum: int) -> dict[str, Any]:
    return {
        "name": name,
        "required": False,
        "in": "query",
        "description": description,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


class DefaultPagination(PageNumberPagination):
    """Page-number pagination for small, stable lists (providers, subscriptions)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    max_page = MAX_PAGE

    def get_page_size(self, request: Request) -> int:
        field = page_size_field(maximum=self.max_page_size)
        return query_int(request, self.page_size_query_param, field, self.page_size)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list:
        self.request = request
        page_size = self.get_page_size(request)
        number = query_int(request, self.page_query_param, page_field(maximum=self.max_page), 1)
        paginator = self.django_paginator_class(queryset, page_size)
        if number > paginator.num_pages:
            self.page = Page([], number, paginator)  # past the end: empty, not an error
        else:
            self.page = paginator.page(number)
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        return list(self.page)

    def get_previous_link(self) -> str | None:
        last = self.page.paginator.num_pages
        if self.page.number <= last:
            return super().get_previous_link()
        # Past the end: "previous" is the last page that has results.
        url = self.request.build_absolute_uri()
        if last <= 1:
            return remove_query_param(url, self.page_query_param)
        return replace_query_param(url, self.page_query_param, last)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            _integer_parameter(
                self.page_query_param,
                "Page number, from 1; a page past the last one is empty.",
                self.max_page,
            ),
            _integer_parameter(
                self.page_size_query_param,
                f"Results per page, from 1 to {self.max_page_size} (default {self.page_size}).",
                self.max_page_size,
            ),
        ]


class NewestFirstCursorPagination(CursorPagination):
    """Stable cursor pagination for feeds of items: new rows never shift a page."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-published_at", "-id")

    def get_page_size(self, request: Request) -> int:
        field = page_size_field(maximum=self.max_page_size)
        return query_int(request, self.page_size_query_param, field, self.page_size)

    def decode_cursor(self, request: Request) -> Any:
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:
            return None  # absent or empty: the first page
        # Ours are base64 (DRF's encoding); b64decode alone would skip other characters
        # and read "%%%" as an empty cursor.
        if len(encoded) > MAX_CURSOR_LENGTH or not _BASE64.fullmatch(encoded):
            raise InvalidCursor()
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise InvalidCursor() from None

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        # A tampered cursor can carry a position the ordering field cannot parse (e.g. not
        # a date-time): the same invalid cursor as any other.
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError:
            raise InvalidCursor() from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The cursor of a `next` or `previous` link; absent or empty: "
                "the first page.",
                "schema": {"type": "string"},
            },
            _integer_parameter(
                self.page_size_query_param,
                f"Results per page, from 1 to {self.max_page_size} (default {self.page_size}).",
                self.max_page_size,
            ),
        ]
