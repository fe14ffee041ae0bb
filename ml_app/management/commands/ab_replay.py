"""``manage.py ab_replay``: a replayed A/B test of the linear ranking against the learned one."""

from __future__ import annotations

import json as jsonlib
import math
import sys
from pathlib import Path

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inbo.errors import ApplicationError
from ml_app.ab_replay import (
    DATASETS,
    KEY_PREFIX,
    PARAM_SETS,
    TOP_K,
    TREATMENT,
    MetricResult,
    ReplayReport,
    replay_mind,
)
from ml_app.ab_replay_deskdrop import K as DESKDROP_K
from ml_app.ab_replay_deskdrop import replay_deskdrop
from ml_app.datasets.deskdrop import RowError
from ml_app.evaluation_scratch import EvaluationError

BEHAVIORS_FILES = ("behaviors.tsv", "behaviors_dev.tsv")
INTERACTIONS_FILES = "users_interactions*.csv"


class Command(BaseCommand):
    """Run a real experiment (layer, experiment, a control and ``learned``, 50/50, exposures)
    over the held-out period of a MIND or DeskDrop replay and analyse it with
    ``experiments_app.stats`` (see :mod:`ml_app.ab_replay`, :mod:`ml_app.ab_replay_deskdrop`)."""

    help = (
        "Replayed A/B test: linear ranking (control) vs learned reranker. Creates and starts "
        "a real experiment 'replay-linear-vs-learned-<dataset>' (its own layer, 50/50, fresh "
        "salts; -2, -3... when the key is taken) in the database it runs on, replays the "
        "dataset through the real ingestion and ranking (rolled-back transaction, scratch "
        "Redis REDIS_EVAL_URL, FLUSHED before and after), trains the learned reranker on the "
        "training days only (the walk-forward's fit and parameters), assigns every test-period "
        "user with assign(), logs their exposure at their first test impression, ranks each "
        "impression by the user's variant and scores per-user CTR@k and MRR on the logged "
        "clicks. DeskDrop (--dataset deskdrop, a users_interactions*.csv in --path): issue "
        "11's protocol, control 'popularity' (decayed popularity) against the learned ranker, "
        "per-user nDCG@10 and MRR. Prints per-arm users, means and intervals, the relative lift "
        "with its interval and p-value, the SRM check and CUPED; stops the experiment ('replay "
        "finished'). Both arms are scored on the same logged clicks: ranking quality on "
        "held-out days, not a change in behaviour."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", choices=DATASETS, default="mind")
        parser.add_argument(
            "--path",
            required=True,
            type=Path,
            help="Folder with news.tsv and behaviors.tsv (or behaviors_dev.tsv).",
        )
        parser.add_argument(
            "--test-days",
            type=int,
            default=2,
            help="MIND: the last N UTC days of the log are the test period (default 2).",
        )
        parser.add_argument(
            "--pre-days",
            type=int,
            default=1,
            help="MIND: CUPED's pre-period is the last N training days (default 1).",
        )
        parser.add_argument(
            "--k",
            type=int,
            default=None,
            help=f"CTR@k on MIND (default {TOP_K}), nDCG@k on DeskDrop (default {DESKDROP_K}).",
        )
        parser.add_argument(
            "--limit", type=int, default=None, help="MIND: replay only the first N behaviors lines."
        )
        parser.add_argument(
            "--no-similarity",
            action="store_true",
            help="MIND: leave out the text-embedding 'similarity' feature (faster).",
        )
        parser.add_argument(
            "--params",
            choices=list(PARAM_SETS),
            default="walk-forward",
            help="MIND: the learned arm's LightGBM settings. 'walk-forward' (default): issue "
            "11's MIND walk-forward (walk_forward.PARAMS); 'product': the product trainer's "
            "RERANKER_PARAMS boosted from the linear score, its maximum rounds.",
        )
        parser.add_argument(
            "--key", default=None, help=f"Experiment key (default {KEY_PREFIX}-<dataset>)."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(
        self,
        *args: object,
        dataset: str,
        path: Path,
        test_days: int,
        pre_days: int,
        k: int | None,
        limit: int | None,
        no_similarity: bool,
        params: str,
        key: str | None,
        json: bool,
        **options: object,
    ) -> None:
        k = k if k is not None else (TOP_K if dataset == "mind" else DESKDROP_K)
        for name, value in (("--test-days", test_days), ("--pre-days", pre_days), ("--k", k)):
            if value < 1:
                raise CommandError(f"{name} must be a positive whole number.")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number of lines.")
        key = key or f"{KEY_PREFIX}-{dataset}"

        def warn(line: str) -> None:
            self.stderr.write(line, style_func=self.style.WARNING)

        try:
            if dataset == "deskdrop":
                found = sorted(path.glob(INTERACTIONS_FILES))
                if len(found) != 1:
                    raise CommandError(f"{path} must hold one {INTERACTIONS_FILES} file.")
                report = replay_deskdrop(interactions_path=found[0], key=key, k=k, report=warn)
            else:
                news = path / "news.tsv"
                behaviors = next((path / n for n in BEHAVIORS_FILES if (path / n).is_file()), None)
                if not news.is_file() or behaviors is None:
                    raise CommandError(
                        f"{path} must hold news.tsv and one of {', '.join(BEHAVIORS_FILES)}."
                    )
                report = replay_mind(
                    news_path=news,
                    behaviors_path=behaviors,
                    key=key,
                    test_days=test_days,
                    pre_days=pre_days,
                    k=k,
                    limit=limit,
                    similarity=not no_similarity,
                    params=params,
                    embedding_cache=settings.BASE_DIR / "var" / "mind_embeddings",
                    report=warn,
                    progress=None if json else sys.stderr,
                )
        except (EvaluationError, ApplicationError) as error:
            raise CommandError(str(error)) from error
        except redis.RedisError as error:
            raise CommandError(f"Redis is unavailable: {error}") from error
        except (OSError, RowError) as error:
            raise CommandError(f"Cannot read the data: {error}") from error
        if json:
            self.stdout.write(jsonlib.dumps(report.to_dict(), indent=2, default=str))
        else:
            for line in render(report):
                self.stdout.write(line)


def _f(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 100:+.1f}%"


def _metric_lines(m: MetricResult) -> list[str]:
    control = m.control.variant
    lines = [f"{m.metric}:"]
    width = max(len(m.control.variant), len(m.treatment.variant))
    for arm in (m.control, m.treatment):
        lines.append(
            f"  {arm.variant:<{width}}  users {arm.users:>5}  mean {_f(arm.mean)}  "
            f"95% CI [{_f(arm.ci_low)}, {_f(arm.ci_high)}]"
        )
    lines.append(
        f"  {TREATMENT} - {control}: {m.diff:+.4f} [{m.diff_ci_low:+.4f}, {m.diff_ci_high:+.4f}]"
        f"; relative lift {_pct(m.lift)} [{_pct(m.lift_ci_low)}, {_pct(m.lift_ci_high)}]; "
        f"p = {_f(m.p_value)} (Welch)"
    )
    return lines


def render(r: ReplayReport) -> list[str]:
    """The report as printed lines."""
    control = r.control
    lines = [
        f"Replayed A/B test on {r.dataset}: experiment {r.experiment!r} (layer {r.layer!r}, "
        f"salts {r.layer_salt}/{r.experiment_salt}, slot [{r.layer_slot[0]}, "
        f"{r.layer_slot[1]}), {control} 50 / {TREATMENT} 50).",
        f"{control}: {r.control_ranker}.",
        f"{TREATMENT}: {r.treatment_ranker}.",
        f"Training period {_period(r.train_days)}: {r.train_units} {r.unit}"
        + (f" ({r.train_units_with_click} with a click)." if r.unit == "impressions" else "."),
        f"Test period {_period(r.test_days)}: {r.test_units} {r.unit}; exposures "
        f"{control} {r.exposures.get(control, 0)}, {TREATMENT} {r.exposures.get(TREATMENT, 0)}.",
        f"Per-user metrics, users weighted equally: {', '.join(r.metrics)} (k = {r.k}).",
        "",
    ]
    for metric in r.metrics.values():
        lines.extend(_metric_lines(metric))
    for name, why in r.skipped.items():
        lines.append(f"{name}: not compared ({why}).")
    if r.srm is not None:
        lines.append(
            f"SRM: observed {r.srm.observed} vs 50/50, chi-square {r.srm.statistic:.3f}, "
            f"p = {_f(r.srm.p_value)}" + (" -> BLOCKING, do not read" if r.srm.blocking else "")
        )
    if r.cuped is not None:
        c = r.cuped
        lines.append(
            f"CUPED: covariate {c.covariate}, pre-period {_period(c.pre_days)}: "
            f"{c.users_with_pre} users with a value; theta {c.theta:.4f}, "
            f"variance reduction {c.variance_reduction * 100:.1f}%"
        )
        lines.extend("  " + line for line in _metric_lines(c.adjusted))
    if r.counterfactual is not None:
        cf = r.counterfactual
        lines.append(
            f"Counterfactual check (each of the {cf.users} users scored under both rankings, "
            f"not part of the A/B): {cf.metric} {control} {_f(cf.control)}, {TREATMENT} "
            f"{_f(cf.treatment)}, paired difference {cf.diff:+.4f} "
            f"[{cf.diff_ci_low:+.4f}, {cf.diff_ci_high:+.4f}]"
        )
    lines.append(f"Experiment stopped: {r.stop_reason!r}. {r.seconds:.1f} s in all.")
    lines.append(
        "A replay: both arms are scored on the same logged clicks, so this measures ranking "
        "quality on held-out data, not behaviour change."
    )
    return lines


def _period(days: tuple[str, ...]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}" if days else "-"
