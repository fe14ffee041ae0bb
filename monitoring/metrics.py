"""INBO's own Prometheus metrics, all defined here.

Figures that live in PostgreSQL or Redis (and are written by worker processes) are read
at scrape time by a collector, so every web process exports the same true values without
a multiprocess registry.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from experience_app import public as experience
from features_app import public as features


class InboCollector(Collector):
    """Feature-store health and feed cache figures, read when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        figures = features.health_figures()
        yield GaugeMetricFamily(
            "inbo_features_quarantined_counters",
            "Counter values that failed validation and are not resolved.",
            value=figures["quarantined_open"],
        )
        if "dirty_items" in figures:
            yield GaugeMetricFamily(
                "inbo_features_sync_backlog_items",
                "Items whose counters changed and wait for the next sync.",
                value=figures["dirty_items"],
            )
        if "sync_age_seconds" in figures:
            yield GaugeMetricFamily(
                "inbo_features_sync_lag_seconds",
                "Seconds since the last completed counter sync.",
                value=figures["sync_age_seconds"],
            )
        if "reconcile_drift" in figures:
            yield GaugeMetricFamily(
                "inbo_features_reconcile_drift",
                "Total counter drift the last reconciliation found (before repairing it).",
                value=figures["reconcile_drift"],
            )
        stats = experience.feed_cache_stats()
        if stats is not None:
            family = CounterMetricFamily(
                "inbo_feed_cache_requests",
                "Home feed requests by cache outcome.",
                labels=["outcome"],
            )
            family.add_metric(["hit"], stats["hit"])
            family.add_metric(["miss"], stats["miss"])
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # collected lazily: nothing to query at registration
