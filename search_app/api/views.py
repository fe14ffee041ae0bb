"""Thin views of search: parse and validate, call the service, shape the response."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inbo.api.schema import ErrorSerializer, error_responses
from inbo.api.throttling import THROTTLED
from reading_app import public as reading
from reading_app.contracts import CatalogKind
from search_app import selectors
from search_app.api.serializers import (
    MAX_RESULT_WINDOW,
    AnalyticsParamsSerializer,
    AnalyticsSerializer,
    ClickResultSerializer,
    ClickSerializer,
    SearchParamsSerializer,
    SearchResponseSerializer,
)
from search_app.contracts import SearchQuery, SearchResult, Sort
from search_app.services import analytics
from search_app.services.search import search


def _results(result: SearchResult, doc_type: CatalogKind, offset: int) -> list[dict]:
    """Hits with their catalog cards (two queries); a hit deleted since it was indexed is
    left out."""
    ids = [hit.id for hit in result.hits]
    items = reading.item_cards(ids) if doc_type == CatalogKind.ITEMS else {}
    providers = reading.provider_cards(ids) if doc_type == CatalogKind.PROVIDERS else {}
    rows = []
    for position, hit in enumerate(result.hits, start=offset + 1):
        if position > MAX_RESULT_WINDOW:
            break  # past the results that are served (docs/API.md, Pagination)
        card = items.get(hit.id) or providers.get(hit.id)
        if card is None:
            continue
        rows.append(
            {
                "type": "item" if doc_type == CatalogKind.ITEMS else "provider",
                "id": hit.id,
                "position": position,
                "score": hit.score,
                "highlights": hit.highlights,
                "item": items.get(hit.id),
                "provider": providers.get(hit.id),
            }
        )
    return rows


def query_params(request: Request) -> dict[str, str]:
    """The query string as a plain dict (last value of a repeated name). A serializer
    reading a QueryDict takes an empty optional value (``type=``) for an absent one and
    applies the default; from a plain dict the field sees ``""`` and refuses it."""
    return request.query_params.dict()


class SearchView(APIView):
    permission_classes = [permissions.AllowAny]
    throttle_classes = THROTTLED  # per user and per address (THROTTLE_RATE_SEARCH)
    throttle_scope = "search"

    @extend_schema(
        summary="Search items or newsletters",
        description="Full-text search with filters, facets and highlights. Readable without "
        "signing in (a signed-in searcher is logged with the search). `search_id` identifies "
        "this response for `POST /search/clicks/`. `degraded` is true when the configured "
        "engine was down and PostgreSQL answered. The query text is normalized and cut to "
        f"200 characters. Only the first {MAX_RESULT_WINDOW} results are served: a page past "
        "them is empty. Empty values (`type=`, `to=`) are refused; leave a parameter out "
        "for its default.",
        parameters=[SearchParamsSerializer],
        responses={
            200: SearchResponseSerializer,
            **error_responses(400, 401, 429),
            503: OpenApiResponse(
                ErrorSerializer, description="Search unavailable (PostgreSQL timed out)."
            ),
        },
        tags=["search"],
    )
    def get(self, request: Request) -> Response:
        params = SearchParamsSerializer(data=query_params(request))
        params.is_valid(raise_exception=True)
        p = params.validated_data
        doc_type = CatalogKind(p["type"])
        offset = (p["page"] - 1) * p["page_size"]
        query = SearchQuery(
            text=p["q"],
            doc_type=doc_type,
            category=p.get("category"),
            provider=p.get("provider"),
            language=p.get("language"),
            date_from=p["from"].start if p.get("from") else None,
            date_to=p["to"].end if p.get("to") else None,
            sort=Sort(p["sort"]),
            offset=offset,
            limit=p["page_size"],
        )
        user_id = request.user.pk if request.user.is_authenticated else None
        result = search(query, user_id=user_id)
        return Response(
            {
                "search_id": result.search_id,
                "query": query.text,
                "corrected_query": result.corrected_query,
                "backend": result.backend,
                "degraded": result.degraded,
                "total": result.total,
                "page": p["page"],
                "page_size": p["page_size"],
                "facets": result.facets,
                "results": _results(result, doc_type, offset),
            }
        )


class ClickView(APIView):
    permission_classes = [permissions.AllowAny]
    throttle_classes = THROTTLED  # per user and per address (THROTTLE_RATE_SEARCH_CLICK)
    throttle_scope = "search_click"

    @extend_schema(
        summary="Record a click on a search result",
        description="`id` and `position` come from the search response's results. A repeated "
        "click on the same result of the same search is recorded once.",
        request=ClickSerializer,
        responses={201: ClickResultSerializer, **error_responses(400, 401, 429)},
        tags=["search"],
    )
    def post(self, request: Request) -> Response:
        data = ClickSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recorded = analytics.click_record(
            search_id=data.validated_data["search_id"],
            object_id=data.validated_data["id"],
            position=data.validated_data["position"],
        )
        return Response({"recorded": recorded}, status=status.HTTP_201_CREATED)


class AnalyticsView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="Search analytics over a period (staff only)",
        description="Top queries, zero-result queries, click-through rate and mean click "
        "position, computed by PostgreSQL. Days are UTC; `to` is included.",
        parameters=[AnalyticsParamsSerializer],
        responses={200: AnalyticsSerializer, **error_responses(400, 401, 403)},
        tags=["search"],
    )
    def get(self, request: Request) -> Response:
        params = AnalyticsParamsSerializer(data=query_params(request))
        params.is_valid(raise_exception=True)
        summary = selectors.analytics_summary(
            params.validated_data["from"], params.validated_data["to"]
        )
        return Response(AnalyticsSerializer(asdict(summary)).data)
