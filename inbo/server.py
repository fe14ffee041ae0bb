"""The web server: granian serving ``inbo.wsgi`` (ADR 0015).

``python -m inbo.server [granian options]`` is what ``make run``, the Dockerfile and
docker-compose start. It does what must happen once per process group before any worker
starts, then becomes granian (same process id, so signals reach granian directly):

- Prometheus multiprocess mode (ADR 0011): with ``PROMETHEUS_MULTIPROC_DIR`` set, every
  worker writes its samples there and ``/metrics`` sums them, so the folder is emptied here.

Granian reads HTTP in Rust on an event loop and hands only complete requests to the Python
threads, so clients that send their headers slowly hold a socket, not a worker. Options come
from the environment (``.env.example``, "Web server"); extra arguments are passed on and win
over these (granian keeps the last value of a repeated option).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

from inbo.env import env_bool, env_int

APPLICATION = "inbo.wsgi:application"


def reset_metrics_directory() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR``: files of an earlier run would count as live."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def granian_arguments(extra: Sequence[str] = ()) -> list[str]:
    """Granian's command line for INBO: settings from the environment, then ``extra``."""
    args = [
        "--interface",
        "wsgi",
        "--no-ws",
        # Two single-threaded workers per core: the most requests for the least CPU of the
        # web servers and thread counts `make bench` compares (docs/SCALING.md, "Web server").
        "--workers",
        str(env_int("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1))),
        # Threads per worker that run Django (each may hold a database connection).
        "--blocking-threads",
        str(env_int("WEB_THREADS", 1)),
        # A client must send its whole request head within this time, or it is dropped.
        "--http1-header-read-timeout",
        str(env_int("WEB_HEADER_TIMEOUT_SECONDS", 10) * 1000),
        # SIGTERM/SIGINT: stop accepting, let requests in flight finish, then kill after this.
        "--workers-kill-timeout",
        str(env_int("WEB_GRACEFUL_TIMEOUT_SECONDS", 30)),
        # A worker that dies (killed, out of memory) is replaced, as gunicorn's master does.
        "--respawn-failed-workers",
        "--access-log" if env_bool("WEB_ACCESS_LOG", True) else "--no-access-log",
    ]
    return [*args, *extra, APPLICATION]


def main(argv: Sequence[str] | None = None) -> None:
    extra = list(sys.argv[1:] if argv is None else argv)
    reset_metrics_directory()
    command = [sys.executable, "-m", "granian", *granian_arguments(extra)]
    sys.stdout.flush()
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
