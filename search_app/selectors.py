"""Reads of search_app: analytics figures, computed by PostgreSQL (aggregates, no loops)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Avg, Count, Exists, F, FloatField, OuterRef, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from inbo.replicas import lag_tolerant
from search_app.models import SearchClick, SearchLog

TOP = 20


@dataclass(frozen=True, slots=True)
class AnalyticsSummary:
    """Search figures over ``[date_from, date_to)``.

    ``searches`` counts result pages served (every request logs one, later pages too); a
    click belongs to the page it was on, so ``click_through_rate`` is the share of pages
    with at least one click. Query rankings count first pages only, empty queries aside.
    """

    date_from: datetime
    date_to: datetime
    searches: int
    searches_with_clicks: int
    click_through_rate: float | None
    clicks: int
    mean_click_position: float | None
    zero_result_searches: int
    degraded_searches: int
    mean_latency_ms: float | None
    top_queries: list[dict]
    zero_result_queries: list[dict]


def recent_figures(window_seconds: int = 900) -> dict[str, float | int | None]:
    """Searches of the last ``window_seconds`` (15 minutes): count, p95 latency, share of
    searches that found nothing. One aggregate query (for health and metrics)."""
    since = timezone.now() - timedelta(seconds=window_seconds)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
                   avg((result_count = 0)::int)
            FROM {SearchLog._meta.db_table} WHERE created_at >= %s
            """,
            [since],
        )
        searches, p95, zero = cursor.fetchone()
    return {
        "recent_searches": int(searches),
        "search_latency_p95_ms": float(p95) if p95 is not None else None,
        "zero_result_rate": float(zero) if zero is not None else None,
    }


def search_logs(date_from: datetime, date_to: datetime) -> QuerySet[SearchLog]:
    return SearchLog.objects.filter(created_at__gte=date_from, created_at__lt=date_to)


@lag_tolerant  # figures of past periods: a replica may answer
def analytics_summary(
    date_from: datetime, date_to: datetime, *, top: int = TOP
) -> AnalyticsSummary:
    """Top queries, zero-result queries, click-through rate and mean click position, in
    four queries."""
    logs = search_logs(date_from, date_to)
    clicked = Exists(SearchClick.objects.filter(search_id=OuterRef("pk")))
    totals = logs.annotate(clicked=clicked).aggregate(
        searches=Count("id"),
        with_clicks=Count("id", filter=Q(clicked=True)),
        zero=Count("id", filter=Q(result_count=0)),
        degraded=Count("id", filter=Q(degraded=True)),
        latency=Avg("latency_ms"),
    )
    clicks = SearchClick.objects.filter(
        search__created_at__gte=date_from, search__created_at__lt=date_to
    ).aggregate(clicks=Count("id"), position=Avg("position"))
    first_pages = logs.filter(page=1).exclude(query="")
    top_queries = list(
        first_pages.annotate(clicked=clicked)
        .values("query")
        .annotate(
            searches=Count("id"),
            with_clicks=Count("id", filter=Q(clicked=True)),
            mean_results=Avg("result_count"),
        )
        .annotate(ctr=Cast(F("with_clicks"), FloatField()) / F("searches"))
        .order_by("-searches", "query")[:top]
    )
    zero_queries = list(
        first_pages.filter(result_count=0)
        .values("query")
        .annotate(searches=Count("id"))
        .order_by("-searches", "query")[:top]
    )
    searches = totals["searches"]
    return AnalyticsSummary(
        date_from=date_from,
        date_to=date_to,
        searches=searches,
        searches_with_clicks=totals["with_clicks"],
        click_through_rate=totals["with_clicks"] / searches if searches else None,
        clicks=clicks["clicks"],
        mean_click_position=clicks["position"],
        zero_result_searches=totals["zero"],
        degraded_searches=totals["degraded"],
        mean_latency_ms=totals["latency"],
        top_queries=[
            {
                "query": row["query"],
                "searches": row["searches"],
                "click_through_rate": row["ctr"],
                "mean_results": float(row["mean_results"] or 0.0),
            }
            for row in top_queries
        ],
        zero_result_queries=[
            {"query": row["query"], "searches": row["searches"]} for row in zero_queries
        ],
    )
