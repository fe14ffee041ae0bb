"""``manage.py seed_demo``: generate INBO's demo world (no external data)."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience_app.services.demo import DEFAULT_DAYS, DEFAULT_SEED, PRESETS, Counts, seed_demo


class Command(BaseCommand):
    """Create a generated demo world: categories, newsletters, issues, readers and their
    history. Deterministic for a seed and idempotent: a second run creates nothing."""

    help = (
        "Generate the demo world: ~45 categories in two levels, providers (newsletters), "
        "items over the last --days days, users demo_user_<n> (unusable passwords) with "
        "subscriptions, reading progress, saved items and an interaction history (events "
        "of source 'demo'). Deterministic for --seed; running it again with the same "
        "arguments creates nothing new (external ids such as demo:item:<n> do not include "
        "the seed, so another seed reuses the stored catalog). --preset small is the size "
        "used by the tests."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--preset",
            choices=sorted(PRESETS),
            default="default",
            help="Base sizes (default: 200 users, 300 providers, 6000 items); "
            "--users/--providers/--items override them.",
        )
        parser.add_argument("--users", type=int, help="Number of demo users.")
        parser.add_argument("--providers", type=int, help="Number of providers (newsletters).")
        parser.add_argument("--items", type=int, help="Number of items (issues).")
        parser.add_argument(
            "--days", type=int, default=DEFAULT_DAYS, help="Length of the history in days."
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed.")

    def handle(self, *args: object, preset: str, days: int, seed: int, **options: object) -> None:
        sizes = dict(PRESETS[preset])
        for key in sizes:
            if isinstance(value := options.get(key), int):
                sizes[key] = value
        if min(sizes.values()) < 0 or days < 1:
            raise CommandError("Counts must not be negative and --days must be at least 1.")
        started = time.monotonic()
        counts = seed_demo(**sizes, days=days, seed=seed, stdout=sys.stderr)
        elapsed = time.monotonic() - started
        self.stdout.write(f"Demo world (seed {seed}, {days} days) ready in {elapsed:.1f}s")
        for line in render(counts):
            self.stdout.write(line)


def render(counts: Counts) -> list[str]:
    """One line per kind: how many rows were created and how many were already there."""
    lines = [f"  {'':<17}{'created':>9}{'already present':>17}"]
    lines += [
        f"  {kind.replace('_', ' '):<17}{c['created']:>9}{c['existing']:>17}"
        for kind, c in counts.items()
    ]
    return lines
