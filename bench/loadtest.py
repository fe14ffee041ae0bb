"""The load test's two steps around locust (``make loadtest``, scripts/loadtest).

    python -m bench.loadtest tokens N FILE     API tokens of N demo users, one per line
    python -m bench.loadtest summary PREFIX    the run's figures from locust's PREFIX_stats.csv

``tokens`` runs against the database of the server under test (``DATABASE_URL``, as
``make run`` has it): each demo user (``seed_demo``'s ``demo_user_<n>``, whose passwords are
unusable) keeps its token while it is valid and gets a new one otherwise. ``summary`` prints
throughput, p50/p95/p99 and errors per request type and writes ``PREFIX_summary.json``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path


def write_tokens(count: int, path: Path) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbo.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from inbo.accounts.authentication import token_expired

    users = get_user_model().objects.filter(username__startswith="demo_user_", is_active=True)
    tokens = []
    for user in users.order_by("id")[:count]:
        token = Token.objects.filter(user=user).first()
        if token is None or token_expired(token):
            Token.objects.filter(user=user).delete()
            token = Token.objects.create(user=user)
        tokens.append(token.key)
    if not tokens:
        raise SystemExit("loadtest: no demo users; `make run` (or manage.py seed_demo) seeds them")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\n" for t in tokens))
    return len(tokens)


def summary(prefix: str) -> dict:
    with open(f"{prefix}_stats.csv") as rows:
        stats = list(csv.DictReader(rows))
    failures: dict[str, int] = {}
    failures_csv = Path(f"{prefix}_failures.csv")
    if failures_csv.exists():
        with failures_csv.open() as rows:
            for row in csv.DictReader(rows):
                reason = f"{row['Name']}: {row['Error']}"
                failures[reason] = failures.get(reason, 0) + int(row["Occurrences"])
    out = {"requests": {}, "failures": failures}
    for row in stats:
        name = row["Name"]
        out["requests"][name] = {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": round(float(row["Requests/s"]), 2),
            "p50_ms": float(row["50%"] or 0),
            "p95_ms": float(row["95%"] or 0),
            "p99_ms": float(row["99%"] or 0),
            "max_ms": round(float(row["Max Response Time"] or 0), 1),
        }
    Path(f"{prefix}_summary.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def render(figures: dict) -> str:
    head = f"{'request':<16}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    head += f"{'errors':>8}"
    lines = [head, "-" * len(head)]
    for name, f in figures["requests"].items():
        lines.append(
            f"{name:<16}{f['requests']:>10,}{f['rps']:>9.1f}{f['p50_ms']:>9.0f}"
            f"{f['p95_ms']:>9.0f}{f['p99_ms']:>9.0f}{f['failures']:>8,}"
        )
    if figures["failures"]:
        lines += ["", "errors:"]
        lines += [f"  {n:>6,}  {reason}" for reason, n in sorted(figures["failures"].items())]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "tokens":
        written = write_tokens(int(argv[1]), Path(argv[2]))
        print(f"loadtest: {written} demo users' tokens in {argv[2]}")
    elif len(argv) == 2 and argv[0] == "summary":
        print(render(summary(argv[1])))
        print(f"\nfigures: {argv[1]}_summary.json")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
