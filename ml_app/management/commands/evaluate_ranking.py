"""``manage.py evaluate_ranking``: offline replay of MIND-format behaviors, with baselines."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.evaluation import (
    METHOD_LABELS,
    METHODS,
    RANKING,
    EvaluationError,
    EvaluationResult,
    MethodScores,
    evaluate_ranking,
)


class Command(BaseCommand):
    """Replay MIND behaviors in time order through ``events_ingest`` and ``rank``.

    Each impression's candidates are ranked with only what was ingested before it, by the
    product's ranking function and by three baselines (random, cumulative popularity, most
    recent); then its impression and click events are ingested. Prints AUC, MRR, nDCG@5
    and nDCG@10 per method, computed per impression as MIND's evaluate.py does. Runs in
    a rolled-back transaction and a scratch Redis database (``REDIS_EVAL_URL``, flushed
    before and after): no other data is touched.
    """

    help = (
        "Offline replay evaluation on MIND-format files (news.tsv, behaviors.tsv). "
        "Impressions are replayed in time order through the real ingestion (events_ingest) "
        "and ranking (experience_app.ranking.rank): each impression is ranked with only what "
        "happened before it, then its impressions and clicks are ingested. Prints AUC, MRR, "
        "nDCG@5 and nDCG@10 (per impression, as MIND's evaluate.py) for the ranking and the "
        "baselines random, cumulative popularity and most recent. Everything runs in a "
        "rolled-back PostgreSQL transaction and in the scratch Redis database REDIS_EVAL_URL, "
        "which is FLUSHED before and after the run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--news", required=True, type=Path, help="Path to news.tsv.")
        parser.add_argument("--behaviors", required=True, type=Path, help="Path to behaviors.tsv.")
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Replay only the first N lines of the behaviors file (all news rows are read).",
        )
        parser.add_argument(
            "--per-day", action="store_true", help="Also print the figures per UTC day."
        )
        parser.add_argument(
            "--predictions",
            type=Path,
            default=None,
            help="Write the ranking's ranks in the MIND competition format "
            "('impression_id [r1,r2,...]', one line per impression, in file order), "
            "for MIND's official evaluation script.",
        )
        parser.add_argument(
            "--freshness-half-life",
            type=float,
            default=None,
            metavar="HOURS",
            help="Freshness half-life of the ranking, in hours. Default: the product's "
            "EXPERIENCE_FRESHNESS_HALF_LIFE_HOURS (24), so what is measured is what the feed "
            "serves. MIND has no publication times, so freshness here is the age since an "
            "item's first impression; news fades fast, and 1 replays slightly better.",
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="Seed of the random baseline (default: 0)."
        )

    def handle(
        self,
        *args: object,
        news: Path,
        behaviors: Path,
        limit: int | None,
        per_day: bool,
        predictions: Path | None,
        freshness_half_life: float | None,
        seed: int,
        **options: object,
    ) -> None:
        for label, path in (("news", news), ("behaviors", behaviors)):
            if not path.is_file():
                raise CommandError(f"The {label} file does not exist or is not a file: {path}")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number of lines.")
        if freshness_half_life is not None and not freshness_half_life > 0:
            raise CommandError("--freshness-half-life must be a positive number of hours.")
        try:
            result = evaluate_ranking(
                news_path=news,
                behaviors_path=behaviors,
                limit=limit,
                freshness_half_life_hours=freshness_half_life,
                predictions=predictions,
                seed=seed,
                report=lambda line: self.stderr.write(line, style_func=self.style.WARNING),
                progress=sys.stderr,
            )
        except EvaluationError as error:
            raise CommandError(str(error)) from error
        except redis.RedisError as error:
            raise CommandError(f"Redis is unavailable: {error}") from error
        except OSError as error:
            raise CommandError(f"Cannot read or write a file: {error}") from error
        for line in render(result, per_day=per_day):
            self.stdout.write(line)
        if predictions is not None:
            self.stdout.write(f"Predictions written to {predictions}")


def _figure(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{value:.4f}"


def _table(scores: dict[str, MethodScores], indent: str = "") -> list[str]:
    width = max(len(label) for label in METHOD_LABELS.values())
    lines = [
        f"{indent}{'method':<{width}}  {'AUC':>6}  {'MRR':>6}  {'nDCG@5':>6}  "
        f"{'nDCG@10':>7}  {'impressions':>11}"
    ]
    for method in METHODS:
        s = scores[method]
        lines.append(
            f"{indent}{METHOD_LABELS[method]:<{width}}  {_figure(s.auc):>6}  "
            f"{_figure(s.mrr):>6}  {_figure(s.ndcg5):>6}  {_figure(s.ndcg10):>7}  "
            f"{s.impressions:>11}"
        )
    return lines


def render(result: EvaluationResult, *, per_day: bool = False) -> list[str]:
    """The report the command prints: the overall table, then one per day if asked."""
    r = result
    ranking = r.overall[RANKING]
    text_share = r.candidates_with_text / r.candidates if r.candidates else 0.0
    lines = [
        f"Replayed {r.impressions} impressions of {r.users} users in {r.seconds:.1f}s "
        f"({r.events_ingested} events ingested, {r.lines_skipped} lines skipped; "
        f"ranking freshness half-life {r.freshness_half_life_hours:g}h)",
        f"Candidates: {r.candidates}, {r.candidates_with_text} with a news row "
        f"({text_share:.1%}); the others are ranked on id-level signals only.",
        "",
        *_table(r.overall),
        "",
        f"AUC over {ranking.auc_n} impressions ({ranking.auc_skipped} skipped: a single "
        f"class); MRR and nDCG over {ranking.clicked_n} impressions with a click.",
    ]
    if per_day:
        for day in sorted(r.per_day):
            lines += ["", f"{day.isoformat()}:", *_table(r.per_day[day], indent="  ")]
    return lines
