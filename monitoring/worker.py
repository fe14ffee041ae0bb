"""Celery-side monitoring: worker heartbeats, the worker's metrics exporter, task metrics
from Celery signals and beat's per-task last-run times.

- :class:`WorkerHeartbeat` (a worker bootstep, main process) writes the worker's node name
  and the time into ``keys.worker_heartbeats()`` every ``WORKER_HEARTBEAT_SECONDS`` from the
  worker's own timer; readiness counts the recent ones. Cheap (one pipelined write), and
  unlike ``celery inspect ping`` it costs readiness nothing but one Redis read.
- :class:`WorkerMetricsServer` (a worker bootstep, main process) serves ``/metrics`` on
  ``WORKER_METRICS_PORT``. Tasks run in prefork children, so their samples go to
  ``PROMETHEUS_MULTIPROC_DIR`` and the exporter sums every child's files (ADR 0011).
- ``task_prerun`` / ``task_postrun`` / ``task_failure`` handlers observe runs, failures and
  durations in whichever process runs the task.
- In beat only, ``after_task_publish`` records when each task was last sent
  (``keys.beat_last_run()``): the per-task last-run ages and beat's own liveness.

Bootsteps are added to the worker in ``inbo/celery.py``; the signal handlers are connected
when this module is imported (``MonitoringConfig.ready``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import redis
from celery import bootsteps
from celery.signals import (
    after_task_publish,
    beat_embedded_init,
    beat_init,
    task_failure,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
)
from django.conf import settings
from prometheus_client import start_http_server

from inbo import keys
from monitoring import checks, metrics

logger = logging.getLogger(__name__)


def _state() -> redis.Redis:
    # The non-retrying probe client: a Redis outage must not stall the worker's or beat's
    # loop for the seconds redis-py's default retries would take.
    return checks.probe(settings.REDIS_STATE_URL)


# --- worker bootsteps -------------------------------------------------------------------


def write_heartbeat(hostname: str, now: float | None = None) -> None:
    """Record that worker ``hostname`` is alive, and forget workers silent for an hour."""
    now = time.time() if now is None else now
    try:
        pipe = _state().pipeline(transaction=False)
        pipe.zadd(keys.worker_heartbeats(), {hostname: now})
        pipe.zremrangebyscore(
            keys.worker_heartbeats(), "-inf", now - keys.WORKER_HEARTBEAT_RETENTION_SECONDS
        )
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("monitoring.worker_heartbeat_failed worker=%s error=%s", hostname, exc)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Writes this worker's heartbeat from the worker's timer (main process)."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        write_heartbeat(worker.hostname)
        self.tref = worker.timer.call_repeatedly(
            settings.WORKER_HEARTBEAT_SECONDS, write_heartbeat, (worker.hostname,), priority=10
        )

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        try:  # a clean shutdown says so at once; a crash ages out
            _state().zrem(keys.worker_heartbeats(), worker.hostname)
        except redis.RedisError as exc:
            logger.warning("monitoring.worker_heartbeat_clear_failed error=%s", exc)


class WorkerMetricsServer(bootsteps.StartStopStep):
    """Serves the worker's metrics on ``WORKER_METRICS_ADDR:WORKER_METRICS_PORT``."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.server: Any = None

    def include_if(self, worker: Any) -> bool:
        return int(settings.WORKER_METRICS_PORT) > 0

    def start(self, worker: Any) -> None:
        if metrics.multiprocess_dir() is None:
            logger.warning(
                "monitoring.worker_metrics_single_process: PROMETHEUS_MULTIPROC_DIR is not "
                "set, so only tasks run in the main process (solo/threads pools) are exported"
            )
        self.server, _ = start_http_server(
            settings.WORKER_METRICS_PORT,
            addr=settings.WORKER_METRICS_ADDR,
            registry=metrics.worker_registry(),
        )
        logger.info(
            "monitoring.worker_metrics_listening addr=%s port=%s",
            settings.WORKER_METRICS_ADDR,
            settings.WORKER_METRICS_PORT,
        )

    def stop(self, worker: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# --- task metrics (every process that runs tasks) ---------------------------------------

# Start times of the tasks this process is running, by task id (one per prefork child).
_started: dict[str, float] = {}


@task_prerun.connect(dispatch_uid="monitoring.task_started")
def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


@task_postrun.connect(dispatch_uid="monitoring.task_finished")
def _task_finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    name = getattr(task, "name", None) or "unknown"
    metrics.CELERY_TASK_RUNS.labels(task=name, state=state or "UNKNOWN").inc()
    if started is not None:
        metrics.CELERY_TASK_DURATION.labels(task=name).observe(time.perf_counter() - started)


@task_failure.connect(dispatch_uid="monitoring.task_failed")
def _task_failed(sender: Any = None, exception: BaseException | None = None, **kwargs: Any) -> None:
    name = getattr(sender, "name", None) or "unknown"
    metrics.CELERY_TASK_FAILURES.labels(
        task=name, exception=type(exception).__name__ if exception is not None else "unknown"
    ).inc()


@worker_process_shutdown.connect(dispatch_uid="monitoring.child_exit")
def _child_exit(**kwargs: Any) -> None:
    if metrics.multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


# --- beat: when each task was last sent -------------------------------------------------


def record_sent(task_name: str, now: float | None = None) -> None:
    """Record that beat just sent ``task_name``."""
    try:
        _state().hset(keys.beat_last_run(), task_name, f"{time.time() if now is None else now:.3f}")
    except redis.RedisError as exc:
        logger.warning("monitoring.beat_last_run_failed task=%s error=%s", task_name, exc)


def _task_sent(sender: Any = None, headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    name = (headers or {}).get("task") or sender
    if name:
        record_sent(str(name))


@beat_init.connect(dispatch_uid="monitoring.beat_init")
@beat_embedded_init.connect(dispatch_uid="monitoring.beat_embedded_init")
def _beat_started(**kwargs: Any) -> None:
    # Only beat records its sends: a worker publishing a retry is not a scheduled run.
    after_task_publish.connect(_task_sent, weak=False, dispatch_uid="monitoring.beat_sent")
