"""Where an interactions batch spends its CPU, on the benchmark world (in process, no server).

    python -m bench.profile_ingest [--batches N] [--batch B] [--rounds R] [--cprofile] [--top N]

POSTs ``N`` batches of ``B`` fresh interactions to ``/api/v1/experience/interactions/``
through Django's WSGI handler in this process (the environ a WSGI server would pass, the
body read, the response closed), built as ``bench/wrk/ingest.lua`` builds them (mostly
impressions, one request id per batch, section and position), for the bench users in turn,
and prints this process's CPU time per batch and per event (PostgreSQL's and Redis's own
work is not in it: it is the web process's share, what `make bench`'s ingest phase is bound
by). The best of ``R`` rounds is kept (the machine may be shared). With ``--cprofile`` the
functions that took the most time. Needs the benchmark's world and Redis (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import print_profile, setup_django

INTERACTIONS = "/api/v1/experience/interactions/"
KINDS = ["impression"] * 85 + ["click"] * 10 + ["read"] * 4 + ["save"]


def _body(items: list[int], size: int, rng: random.Random) -> bytes:
    request_id = str(uuid.uuid4())
    return json.dumps(
        {
            "interactions": [
                {
                    "event_id": str(uuid.uuid4()),
                    "item_id": rng.choice(items),
                    "type": rng.choice(KINDS),
                    "request_id": request_id,
                    "section": "for_you",
                    "position": position,
                }
                for position in range(size)
            ]
        },
        separators=(",", ":"),
    ).encode()


def _environ(token: str, body: bytes) -> dict:
    from django.test.client import FakePayload

    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": INTERACTIONS,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8765",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8765",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": FakePayload(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multiprocess": True,
        "wsgi.multithread": False,
        "wsgi.run_once": False,
    }


def _handler() -> Callable[[str, bytes], bytes]:
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Callable[[bytes], object]:
        statuses.append(status)
        return lambda data: None

    def call(token: str, body: bytes) -> bytes:
        response = handler(_environ(token, body), start_response)
        out = b"".join(response)
        response.close()  # request_finished: what a WSGI server does after sending
        status = statuses.pop()
        assert status.startswith("200"), (status, out[:300])
        return out

    return call


def _cpu_ms(call: Callable[[str, bytes], bytes], work: list[tuple[str, bytes]]) -> float:
    began = time.process_time()
    for token, body in work:
        call(token, body)
    return 1000 * (time.process_time() - began) / len(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    setup_django()
    from bench.load import bench_users, published_item_ids

    tokens = [t for _, t in bench_users()]
    items = published_item_ids()
    rng = random.Random(42)
    turn = iter(range(10**9))

    def work() -> list[tuple[str, bytes]]:
        return [
            (tokens[next(turn) % len(tokens)], _body(items, args.batch, rng))
            for _ in range(args.batches)
        ]

    call = _handler()
    _cpu_ms(call, work()[:20])  # warm: imports, connections, caches
    best = min(_cpu_ms(call, work()) for _ in range(args.rounds))
    print(
        f"\ningest, {args.batches} batches of {args.batch} x {args.rounds} rounds (best): "
        f"{best:.3f} CPU ms/batch, {best / args.batch:.4f} CPU ms/event"
    )
    if args.cprofile:
        batches = work()
        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the servers
        profiler.enable()
        _cpu_ms(call, batches)
        profiler.disable()
        print_profile(profiler, args.top, f"{len(batches)} batches")


if __name__ == "__main__":
    main()
