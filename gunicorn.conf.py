"""Gunicorn settings read from the working directory (the Dockerfile and scripts/run start
gunicorn there): Prometheus multiprocess mode for the web process group (ADR 0011).

With ``PROMETHEUS_MULTIPROC_DIR`` set, every gunicorn worker writes its samples to that
directory and ``/metrics`` sums them; the directory must start empty, and the files of a
worker that exited must stop counting as live.
"""

import os
import shutil


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
