"""manage.py search_bench: latency of typical searches against one backend, on this catalog."""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from reading_app.contracts import CatalogKind
from search_app.backends import BACKENDS, POSTGRES, get_backend
from search_app.contracts import SearchQuery, Sort
from search_app.models import SearchDocument, SearchVocabulary
from search_app.services import indexing

# Queries per kind; ~200 in all.
MIX = {
    "one word": 50,
    "two words": 40,
    "prefix": 40,
    "typo": 30,
    "word + filter": 30,
    "browse + filter": 10,
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap two letters


class Command(BaseCommand):
    help = (
        "Run ~200 typical searches (single words, two words, prefixes, typos, with and "
        "without filters) against a backend and print p50/p95 latency per kind. Words come "
        "from the indexed vocabulary; --reindex first measures a full rebuild."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", choices=BACKENDS, default=POSTGRES)
        parser.add_argument("--reindex", action="store_true", help="Time a full rebuild first.")
        parser.add_argument("--rounds", type=int, default=3, help="Timed passes over the mix.")
        parser.add_argument("--seed", type=int, default=7)

    def _queries(self, rng: random.Random) -> list[tuple[str, SearchQuery]]:
        # Words readers would type: frequent, but not in every document.
        items = SearchDocument.objects.filter(doc_type=CatalogKind.ITEMS.value).count()
        words = list(
            SearchVocabulary.objects.filter(ndoc__gte=5, ndoc__lte=max(10, items // 5))
            .exclude(word__regex=r"^.{0,3}$")
            .order_by("-ndoc")
            .values_list("word", flat=True)[:400]
        )
        if len(words) < 20:
            raise CommandError("Too few indexed words: run search_reindex first.")
        long_words = [w for w in words if len(w) >= 6] or words
        categories = list(
            SearchDocument.objects.filter(doc_type=CatalogKind.ITEMS.value).values_list(
                "categories", flat=True
            )[:500]
        )
        slugs = sorted({c for cats in categories for c in cats}) or [None]
        providers = sorted(
            set(
                SearchDocument.objects.filter(doc_type=CatalogKind.ITEMS.value).values_list(
                    "provider_slug", flat=True
                )[:2000]
            )
        )
        now = timezone.now()
        out: list[tuple[str, SearchQuery]] = []
        for kind, n in MIX.items():
            for _ in range(n):
                word = rng.choice(words)
                if kind == "one word":
                    query = SearchQuery(text=word)
                elif kind == "two words":
                    query = SearchQuery(text=f"{word} {rng.choice(words)}")
                elif kind == "prefix":
                    word = rng.choice(long_words)
                    query = SearchQuery(text=word[: rng.randint(3, 5)])
                elif kind == "typo":
                    query = SearchQuery(text=_typo(rng.choice(long_words), rng))
                elif kind == "word + filter":
                    choice = rng.randrange(3)
                    if choice == 0:
                        query = SearchQuery(text=word, category=rng.choice(slugs))
                    elif choice == 1:
                        query = SearchQuery(text=word, provider=rng.choice(providers))
                    else:
                        query = SearchQuery(
                            text=word, date_from=now - timedelta(days=90), sort=Sort.NEWEST
                        )
                else:
                    query = SearchQuery(text="", category=rng.choice(slugs), sort=Sort.NEWEST)
                out.append((kind, query))
        return out

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["backend"]
        if options["reindex"]:
            started = time.perf_counter()
            counts = indexing.reindex([name])
            self.stdout.write(
                f"reindex {name}: {counts[name]} in {time.perf_counter() - started:.1f} s"
            )
        backend = get_backend(name)
        queries = self._queries(random.Random(options["seed"]))
        for _, query in queries:  # warm caches
            backend.search(query)
        timings: dict[str, list[float]] = {kind: [] for kind in MIX}
        totals: list[int] = []
        for _ in range(options["rounds"]):
            for kind, query in queries:
                started = time.perf_counter()
                result = backend.search(query)
                timings[kind].append((time.perf_counter() - started) * 1000)
                totals.append(result.total)
        everything = [t for values in timings.values() for t in values]
        self.stdout.write(
            f"{name}: {len(queries)} queries x {options['rounds']} rounds, "
            f"{SearchDocument.objects.filter(doc_type='items').count()} item documents, "
            f"median hits {statistics.median(totals):.0f}"
        )
        self.stdout.write(f"{'kind':<16} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for kind, values in [*timings.items(), ("all", everything)]:
            self.stdout.write(
                f"{kind:<16} {len(values):>4} {_percentile(values, 0.5):>8.1f} "
                f"{_percentile(values, 0.95):>8.1f} {max(values):>8.1f}"
            )
