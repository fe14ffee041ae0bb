"""What the stack costs around the ceiling endpoint: per middleware, and authentication.

    python -m bench.profile_ceiling [--requests N] [--rounds R] [--cprofile] [--top N]

Calls ``GET /api/v1/_bench/ceiling/`` through Django's WSGI handler in this process (no
server, no socket: the environ a WSGI server would pass, the body read, the response
closed) with the bench users' tokens, and prints the CPU time per request of:

- the stack as configured (``MIDDLEWARE``);
- the stack without each middleware in turn (what that one costs, by difference);
- the stack with Django's own session, authentication and messages middleware and
  django-prometheus's own after-middleware in place of the project's lighter ones;
- no middleware at all (the view, DRF, authentication and the renderer);
- authentication alone: DRF's ``TokenAuthentication`` (one query per request) against
  the project's ``ExpiringTokenAuthentication`` (its cache warm), called directly.

Each variant runs ``R`` rounds of ``N`` requests, interleaved, and keeps the best round
(the machine may be shared). With ``--cprofile`` the functions of the full stack that took
the most time. Needs the benchmark's world and Redis (docs/BENCHMARKS.md, "The floor").
"""

from __future__ import annotations

import argparse
import cProfile
import io
import time
from collections.abc import Callable

from bench.common import print_profile, setup_django

CEILING = "/api/v1/_bench/ceiling/"
# A middleware that cannot run without another goes with it.
NEEDS = {
    "django.contrib.sessions.middleware.SessionMiddleware": (
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ),
    "inbo.api.middleware.SessionMiddleware": (
        "inbo.api.middleware.AuthenticationMiddleware",
        "inbo.api.middleware.MessageMiddleware",
    ),
}
# The project's lighter middleware and what each replaces (the "as shipped by Django" row).
REPLACES = {
    "inbo.api.middleware.SessionMiddleware": "django.contrib.sessions.middleware.SessionMiddleware",
    "inbo.api.middleware.AuthenticationMiddleware": (
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    ),
    "inbo.api.middleware.MessageMiddleware": "django.contrib.messages.middleware.MessageMiddleware",
    "monitoring.middleware.PrometheusAfterMiddleware": (
        "django_prometheus.middleware.PrometheusAfterMiddleware"
    ),
}


def _environ(token: str) -> dict:
    from django.test.client import FakePayload

    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": CEILING,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8765",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8765",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": FakePayload(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multiprocess": True,
        "wsgi.multithread": False,
        "wsgi.run_once": False,
    }


def _handler(middleware: list[str]) -> Callable[[str], int]:
    """One request through a WSGI handler built with ``middleware``; returns the status."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=middleware):
        handler = WSGIHandler()
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    def call(token: str) -> int:
        response = handler(_environ(token), start_response)
        b"".join(response)
        response.close()  # request_finished: what a WSGI server does after sending
        return int(statuses.pop().split()[0])

    return call


def _cpu_ms(call: Callable[[str], int], tokens: list[str]) -> float:
    began = time.process_time()
    for token in tokens:
        status = call(token)
        assert status == 200, status
    return 1000 * (time.process_time() - began) / len(tokens)


def _auth_calls(tokens: list[str]) -> dict[str, Callable[[str], int]]:
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.test import APIRequestFactory

    from inbo.accounts.authentication import ExpiringTokenAuthentication

    factory = APIRequestFactory()
    requests = {t: factory.get(CEILING, HTTP_AUTHORIZATION=f"Token {t}") for t in tokens}

    def using(authentication: object) -> Callable[[str], int]:
        def call(token: str) -> int:
            user, _ = authentication.authenticate(requests[token])  # type: ignore[attr-defined]
            assert user.is_authenticated
            return 200

        return call

    return {
        "auth: DRF TokenAuthentication (a query)": using(TokenAuthentication()),
        "auth: ExpiringTokenAuthentication": using(ExpiringTokenAuthentication()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.urls import clear_url_caches

    from bench.load import bench_users

    clear_url_caches()
    users = bench_users()
    tokens = [t for _, t in users][: args.requests]
    tokens = (tokens * (args.requests // max(len(tokens), 1) + 1))[: args.requests]
    full = list(settings.MIDDLEWARE)
    variants: dict[str, Callable[[str], int]] = {"stack as configured": _handler(full)}
    for name in full:
        dropped = {name, *NEEDS.get(name, ())}
        label = " + ".join(m.rsplit(".", 1)[-1] for m in full if m in dropped)
        variants[f"  without {label}"] = _handler([m for m in full if m not in dropped])
    variants["stack with Django's and django-prometheus's own"] = _handler(
        [REPLACES.get(m, m) for m in full]
    )
    variants["no middleware"] = _handler([])
    variants.update(_auth_calls(tokens))
    for call in variants.values():  # warm: imports, connections, caches
        _cpu_ms(call, tokens[:50])
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            best[name] = min(best[name], _cpu_ms(call, tokens))
    base = best["stack as configured"]
    print(f"\nceiling, {args.requests} requests x {args.rounds} rounds (best), CPU ms/request")
    for name, ms in best.items():
        saved = f"  (saves {base - ms:+.3f})" if name.startswith("  without") else ""
        print(f"  {ms:7.3f}  {name}{saved}")
    if args.cprofile:
        profiler = cProfile.Profile()
        call = variants["stack as configured"]
        profiler.enable()
        _cpu_ms(call, tokens)
        profiler.disable()
        print_profile(profiler, args.top, f"{len(tokens)} requests")


if __name__ == "__main__":
    main()
