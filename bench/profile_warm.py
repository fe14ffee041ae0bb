"""A warm home's CPU against the ceiling's, in process: the warm target's ratio, measured.

    python -m bench.profile_warm [--requests N] [--rounds R]

Builds the feeds of ``N`` bench users (their first home request), then calls the ceiling
and their warm ``GET /api/v1/experience/home/`` through Django's WSGI handler in this
process (as bench/profile_ceiling.py does: no server, no socket), in ``R`` interleaved
rounds, and prints for each the app CPU per request (the best round and the median), the
ceiling's CPU over the home's (best rounds, and the median of each round's own ratio: the
machine may be shared) and the PostgreSQL backend's CPU per request (its scheduler run
time, from ``/proc``: PostgreSQL must run on this machine). Needs the benchmark's world and
Redis (docs/BENCHMARKS.md, "The floor").
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench.common import setup_django

CEILING = "/api/v1/_bench/ceiling/"
HOME = "/api/v1/experience/home/"


def _backend_ns() -> int:
    """CPU time the connection's PostgreSQL backend has run, in ns (0: no connection)."""
    from django.db import connection

    if connection.connection is None:
        return 0
    pid = connection.connection.info.backend_pid
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def _round(call: Callable[[str], int], path: str, tokens: list[str]) -> tuple[float, float]:
    """(app CPU ms, PostgreSQL backend CPU ms) per request of one round."""
    import bench.profile_ceiling as ceiling

    ceiling.CEILING = path  # the path its environ sends
    backend = _backend_ns()
    began = time.process_time()
    for token in tokens:
        status = call(token)
        assert status == 200, status
    app = 1000 * (time.process_time() - began) / len(tokens)
    after = _backend_ns()
    return app, ((after - backend) / 1e6 / len(tokens)) if backend else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.test import Client

    from bench.load import bench_users
    from bench.profile_ceiling import _handler

    tokens = [token for _, token in bench_users()[1000 : 1000 + args.requests]]
    client = Client()
    for token in tokens:  # the feeds built and cached, the tokens in the token cache
        assert client.get(HOME, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    call = _handler(list(settings.MIDDLEWARE))
    paths = {"ceiling": CEILING, "warm home": HOME}
    for path in paths.values():  # warm: imports, connections
        _round(call, path, tokens[:50])
    app: dict[str, list[float]] = {name: [] for name in paths}
    backend: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, path in paths.items():
            cpu, pg = _round(call, path, tokens)
            app[name].append(cpu)
            backend[name].append(pg)
    print(f"\n{len(tokens)} requests x {args.rounds} rounds, interleaved, CPU ms per request")
    print("     best  median  ceiling/x (best; median of rounds)  PostgreSQL backend (median)")
    for name in paths:
        paired = [c / h for c, h in zip(app["ceiling"], app[name], strict=True)]
        print(
            f"  {min(app[name]):7.3f} {statistics.median(app[name]):7.3f}  "
            f"{min(app['ceiling']) / min(app[name]):5.2f}; {statistics.median(paired):5.2f}"
            f"                    {statistics.median(backend[name]):7.3f}  {name}"
        )


if __name__ == "__main__":
    main()
