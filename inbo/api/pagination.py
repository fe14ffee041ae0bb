"""Pagination classes shared by every list endpoint."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination


class DefaultPagination(PageNumberPagination):
    """Page-number pagination for small, stable lists (providers, subscriptions)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class NewestFirstCursorPagination(CursorPagination):
    """Stable cursor pagination for feeds of items: new rows never shift a page."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-published_at", "-id")

    def paginate_queryset(self, queryset, request, view=None):
        # A tampered cursor can carry a position the ordering field cannot parse (e.g. not
        # a date-time); answer like any other invalid cursor instead of a field error.
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError:
            raise NotFound(self.invalid_cursor_message) from None
