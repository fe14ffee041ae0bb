"""Pagination classes shared by every list endpoint."""

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
