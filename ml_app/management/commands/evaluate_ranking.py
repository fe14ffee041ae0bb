"""``manage.py evaluate_ranking``: offline replay of MIND-format behaviors, with baselines."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.evaluation import (
    CTR,
    LEARNED,
    METHOD_LABELS,
    METHODS,
    PREDICTION_RANKERS,
    RANKING,
    SERVED,
    EvaluationError,
    EvaluationResult,
    MethodScores,
    evaluate_ranking,
)
from ml_app.walk_forward import BOOTSTRAP_RESAMPLES, PARAMS, ROUNDS, Interval
from ml_app.walk_forward_gate import Gate


class Command(BaseCommand):
    """Replay MIND behaviors in time order through ``events_ingest`` and ``rank``.

    Each impression's candidates are ranked with only what was ingested before it, by the
    product's linear ranking function and by four baselines (real-time CTR, random,
    cumulative popularity, most recent), and their learned-feature rows are recorded; then
    its impression and click events are ingested. After the replay, the learned reranker
    (LightGBM boosted from the linear ranking's score) is trained walk-forward: for each day
    after the first, only on the days before it. Prints AUC, MRR, nDCG@5 and nDCG@10 per
    method and per day, computed per impression as MIND's evaluate.py does, with paired
    bootstrap intervals of the learned ranker's AUC gain, and what the product serves behind
    its promotion gate (:mod:`ml_app.walk_forward_gate`). Runs in a rolled-back transaction
    and a scratch Redis database (``REDIS_EVAL_URL``, flushed before and after): no other
    data is touched.
    """

    help = (
        "Offline replay evaluation on MIND-format files (news.tsv, behaviors.tsv). "
        "Impressions are replayed in time order through the real ingestion (events_ingest) "
        "and ranking (experience_app.ranking.rank): each impression is ranked with only what "
        "happened before it, then its impressions and clicks are ingested. The learned "
        "reranker (LightGBM over experience_app.public.FEATURES, boosted from the linear "
        "ranking's score: learned score = linear score + the trees' output) is trained "
        "walk-forward: each day after the first is scored by a model trained only on the "
        "days before it. Prints, overall and per UTC day, AUC, MRR, nDCG@5 and nDCG@10 (per "
        "impression, as MIND's evaluate.py) of the learned ranker, the linear ranking and the "
        "baselines real-time CTR, random, cumulative popularity and most recent, with paired "
        "bootstrap 95% intervals of the learned ranker's AUC gain over the linear ranking "
        "and over CTR per day, and the mean over the scored days. 'served by the product "
        "(gated)' mirrors the model registry's gate: day d is served by the model trained on "
        "the days before d-1 only when its nDCG@10 on day d-1 is strictly above the linear "
        "ranking's, else by the linear ranking. Everything runs in a "
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
            "--per-day",
            action="store_true",
            help="Kept for compatibility: the per-day tables are always printed now.",
        )
        parser.add_argument(
            "--predictions",
            type=Path,
            default=None,
            help="Write a ranking in the MIND competition format ('impression_id "
            "[r1,r2,...]', one line per impression, in file order), for MIND's official "
            "evaluation script: by default the ranking the product serves (see "
            "--predictions-ranker).",
        )
        parser.add_argument(
            "--predictions-ranker",
            choices=list(PREDICTION_RANKERS),
            default=SERVED,
            help="Which ranking --predictions writes. 'served' (default): what the product "
            "serves behind its promotion gate, the gated learned model on the days its gate "
            "passed, the linear ranking on the others; 'learned': the walk-forward model's on "
            "every day one scored, the linear ranking's on the first day; 'linear': the "
            "linear ranking. With --no-learned, all three are the linear ranking.",
        )
        parser.add_argument(
            "--no-learned",
            action="store_true",
            help="Skip the learned reranker (no LightGBM training): linear ranking and "
            "baselines only.",
        )
        parser.add_argument(
            "--no-similarity",
            action="store_true",
            help="Do not compute the text-embedding 'similarity' feature (cosine of the "
            "candidate's title and abstract to the mean of the news the user clicked before, "
            "all-MiniLM-L6-v2 on CPU); faster, and candidates then lack that feature.",
        )
        parser.add_argument(
            "--bootstrap",
            type=int,
            default=BOOTSTRAP_RESAMPLES,
            metavar="N",
            help=f"Paired bootstrap resamples of impressions (default: {BOOTSTRAP_RESAMPLES}).",
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
        predictions_ranker: str,
        freshness_half_life: float | None,
        seed: int,
        no_learned: bool,
        no_similarity: bool,
        bootstrap: int,
        **options: object,
    ) -> None:
        for label, path in (("news", news), ("behaviors", behaviors)):
            if not path.is_file():
                raise CommandError(f"The {label} file does not exist or is not a file: {path}")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number of lines.")
        if freshness_half_life is not None and not freshness_half_life > 0:
            raise CommandError("--freshness-half-life must be a positive number of hours.")
        if bootstrap < 1:
            raise CommandError("--bootstrap must be a positive number of resamples.")
        try:
            result = evaluate_ranking(
                news_path=news,
                behaviors_path=behaviors,
                limit=limit,
                freshness_half_life_hours=freshness_half_life,
                predictions=predictions,
                predictions_ranker=predictions_ranker,
                seed=seed,
                learned=not no_learned,
                similarity=not no_similarity,
                resamples=bootstrap,
                embedding_cache=settings.BASE_DIR / "var" / "mind_embeddings",
                report=lambda line: self.stderr.write(line, style_func=self.style.WARNING),
                progress=sys.stderr,
            )
        except EvaluationError as error:
            raise CommandError(str(error)) from error
        except redis.RedisError as error:
            raise CommandError(f"Redis is unavailable: {error}") from error
        except OSError as error:
            raise CommandError(f"Cannot read or write a file: {error}") from error
        for line in render(result):
            self.stdout.write(line)
        if predictions is not None:
            self.stdout.write(f"Predictions written to {predictions}")


def _figure(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{value:.4f}"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.4f}"


def _table(scores: dict[str, MethodScores], indent: str = "") -> list[str]:
    width = max(len(label) for label in METHOD_LABELS.values())
    lines = [
        f"{indent}{'method':<{width}}  {'AUC':>6}  {'MRR':>6}  {'nDCG@5':>6}  "
        f"{'nDCG@10':>7}  {'impressions':>11}"
    ]
    for method in METHODS:
        s = scores[method]
        if not s.impressions:
            continue
        lines.append(
            f"{indent}{METHOD_LABELS[method]:<{width}}  {_figure(s.auc):>6}  "
            f"{_figure(s.mrr):>6}  {_figure(s.ndcg5):>6}  {_figure(s.ndcg10):>7}  "
            f"{s.impressions:>11}"
        )
    return lines


def _interval(name: str, m: str, i: Interval, indent: str) -> str:
    return (
        f"{indent}{name} - {METHOD_LABELS[m]} AUC: {_signed(i.mean)} "
        f"[95% {_signed(i.low)}, {_signed(i.high)}] over {i.impressions} impressions "
        f"({i.resamples} paired bootstrap resamples)"
    )


def _intervals(intervals: dict[str, Interval], indent: str) -> list[str]:
    return [_interval("learned", m, i, indent) for m, i in intervals.items()]


def _gate(gate: Gate, indent: str) -> str:
    """Which ranker the product served on the gate's day, and why."""
    if gate.gate_day is None:
        why = "no gate: no model scored the day before, the default with no promoted model"
    else:
        trained = ", ".join(d.isoformat() for d in gate.trained_days)
        why = (
            f"gate on {gate.gate_day.isoformat()}: the model trained on {trained}, nDCG@10 "
            f"{_figure(gate.candidate)} vs linear {_figure(gate.baseline)} over "
            f"{gate.impressions} impressions with a click -> "
            f"{'passed' if gate.passed else 'failed'}"
        )
    ranker = "that learned model" if gate.passed else "the linear ranking"
    return f"{indent}{METHOD_LABELS[SERVED]}: {ranker} ({why})"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _scored_days(r: EvaluationResult) -> list[str]:
    """Each method's mean of the daily figures over the days a model scored (none of which
    it was trained on), and the learned ranker's mean AUC gains."""
    wf = r.learned
    if wf is None or not wf.models:
        return []
    days = sorted(wf.models)
    width = max(len(label) for label in METHOD_LABELS.values())
    lines = [
        "",
        f"Mean of the daily figures over the {len(days)} days scored by a model not trained "
        f"on them ({days[0].isoformat()} to {days[-1].isoformat()}):",
        f"  {'method':<{width}}  {'AUC':>6}  {'MRR':>6}  {'nDCG@5':>6}  {'nDCG@10':>7}",
    ]
    auc: dict[str, float] = {}
    for method in METHODS:
        per = [r.per_day[d][method] for d in days]
        auc[method] = _mean([s.auc for s in per])
        figures = [
            auc[method],
            *(_mean([getattr(s, k) for s in per]) for k in ("mrr", "ndcg5", "ndcg10")),
        ]
        lines.append(
            f"  {METHOD_LABELS[method]:<{width}}  "
            + "  ".join(f"{_figure(v):>{w}}" for v, w in zip(figures, (6, 6, 6, 7), strict=True))
        )
    lines.append(
        f"  mean daily AUC gain of the learned ranker: {_signed(auc[LEARNED] - auc[RANKING])} "
        f"over the linear ranking, {_signed(auc[LEARNED] - auc[CTR])} over real-time CTR"
    )
    if r.served is not None:
        passed = sum(1 for d in days if r.served.gates[d].passed)
        lines.append(
            f"  served by the product (gated): a learned model on {passed} of the {len(days)} "
            f"days (gate passed), mean daily AUC gain {_signed(auc[SERVED] - auc[RANKING])} "
            "over the linear ranking"
        )
    if None in wf.intervals:
        lines += ["  pooled over those days' impressions:", *_intervals(wf.intervals[None], "    ")]
    if r.served is not None and None in r.served.intervals:
        lines.append(_interval("served", RANKING, r.served.intervals[None], "    "))
    return lines


def render(result: EvaluationResult, *, per_day: bool = True) -> list[str]:
    """The report the command prints: the overall table, one per day, the scored days' mean."""
    r = result
    ranking = r.overall[RANKING]
    text_share = r.candidates_with_text / r.candidates if r.candidates else 0.0
    lines = [
        f"Replayed {r.impressions} impressions of {r.users} users in {r.seconds:.1f}s "
        f"({r.events_ingested} events ingested, {r.lines_skipped} lines skipped; "
        f"ranking freshness half-life {r.freshness_half_life_hours:g}h)",
        f"Candidates: {r.candidates}, {r.candidates_with_text} with a news row "
        f"({text_share:.1%}); the others are ranked on id-level signals only.",
    ]
    wf = r.learned
    if wf is not None:
        lines.append(
            f"Learned ranker: LightGBM {PARAMS['objective']} from the linear score "
            f"(init_score {PARAMS['init_score']}), {ROUNDS} rounds, walk-forward (each day "
            f"after the first scored by a model trained only on the days before it); "
            f"{len(wf.models)} models trained in {wf.training_seconds:.1f}s; text similarity "
            f"feature {'on' if r.similarity else 'off'}. Its overall row covers the scored "
            "days only."
        )
    if r.served is not None:
        lines.append(
            "Served by the product (gated), every day: the model registry's gate mirrored; "
            "day d is served by the walk-forward model of day d-1 (trained on the days before "
            "d-1) only when its nDCG@10 on day d-1 is strictly above the linear ranking's, "
            "else by the linear ranking (so on the first two days)."
        )
    lines += [
        "",
        *_table(r.overall),
        "",
        f"AUC over {ranking.auc_n} impressions ({ranking.auc_skipped} skipped: a single "
        f"class); MRR and nDCG over {ranking.clicked_n} impressions with a click.",
    ]
    if per_day:
        for day in sorted(r.per_day):
            model = wf.models.get(day) if wf is not None else None
            if model is None:
                note = (
                    "no learned model: no click on an earlier day to train on" if wf else "replay"
                )
            else:
                trained = ", ".join(d.isoformat() for d in model.trained_days)
                note = (
                    f"model trained on {trained}: {len(model.train_impression_ids)} "
                    f"impressions, {model.train_rows} rows, {model.seconds:.1f}s"
                )
            lines += ["", f"{day.isoformat()} ({note}):", *_table(r.per_day[day], indent="  ")]
            if wf is not None and day in wf.intervals:
                lines += _intervals(wf.intervals[day], "  ")
            if r.served is not None:
                lines.append(_gate(r.served.gates[day], "  "))
                if day in r.served.intervals:
                    lines.append(_interval("served", RANKING, r.served.intervals[day], "  "))
    return lines + _scored_days(r)
