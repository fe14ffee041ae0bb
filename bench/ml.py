"""The learned models' costs, in one process: ``make bench-ml`` (``python -m bench.ml``).

Against the benchmark world (``inbo_bench``, seeded by ``make bench``; ``bench/run.sh ml``
reuses or seeds it):

1. **embedding throughput** — items/s encoding the world's item texts (title, summary and
   the start of the body, as ``features_app`` embeds them) with
   ``features_app.public.embed_texts``, batches of 64, with 1 torch thread and with every core;
2. **rerank latency** — ``experience_app.public.rerank`` of 300 ranked candidates (the
   feature rows of ``FEATURES``, synthetic values in their served ranges) with the
   benchmark's reranker loaded as serving loads it (``load_artifact``; 100 trees of 7
   leaves, the largest the trainer makes): wall and CPU time per call, p50/p95;
3. **one ceiling request's CPU** — ``GET /api/v1/_bench/ceiling/`` through Django's test
   client in this same process (middleware, token authentication, one cached Redis value,
   JSON rendering; no gunicorn, so it is cheaper than ``make bench``'s ceiling and the
   comparison is the stricter for it), CPU per request p50/p95; and the ratio of the two;
4. **training** — ``manage.py bench_ml`` (ml_app): ALS and LightGBM lambdarank time per
   dataset, datasets from ``BENCH_DATASETS`` (``/work/shared/datasets``), skipped if absent.

Prints the figures and writes var/bench/ml_results.json. CPU times are this process's
(``time.process_time``); wall times move with whatever else runs on the machine.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import learned
from bench.common import VAR, env_int, say, setup_django

CEILING = "/api/v1/_bench/ceiling/"
CANDIDATES = env_int("BENCH_RERANK_CANDIDATES", 300)
RERANK_CALLS = env_int("BENCH_RERANK_CALLS", 500)
CEILING_CALLS = env_int("BENCH_CEILING_CALLS", 2000)
EMBED_TEXTS = env_int("BENCH_EMBED_TEXTS", 256)
EMBED_BATCH = 64
PAGE = 20  # the candidates one home page shows
DATASETS = Path(os.environ.get("BENCH_DATASETS", "/work/shared/datasets"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def timed(call, n: int, warmup: int) -> dict[str, float]:
    """p50/p95 of wall and CPU milliseconds per call over ``n`` calls, after ``warmup``."""
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(n):
        w, c = time.perf_counter(), time.process_time()
        call()
        cpu.append(1000 * (time.process_time() - c))
        wall.append(1000 * (time.perf_counter() - w))
    return {
        "calls": n,
        "wall_p50_ms": round(percentile(wall, 0.5), 3),
        "wall_p95_ms": round(percentile(wall, 0.95), 3),
        "cpu_p50_ms": round(percentile(cpu, 0.5), 3),
        "cpu_p95_ms": round(percentile(cpu, 0.95), 3),
        "cpu_mean_ms": round(sum(cpu) / n, 3),
    }


# --- embeddings ----------------------------------------------------------------------


def item_texts(count: int) -> list[str]:
    from django.conf import settings

    from reading_app.public import item_search_data

    ids = learned.candidate_pool()[:count]
    data = item_search_data(ids, body_chars=settings.EMBEDDINGS_BODY_CHARS)
    # features_app's item text: title, summary, then the start of the body.
    return [
        "\n".join(p.strip() for p in (d.title, d.summary, d.body_excerpt) if p and p.strip())
        for d in data.values()
    ]


def embedding_throughput(texts: list[str]) -> dict[str, float]:
    import torch

    from features_app.public import embed_texts

    before = torch.get_num_threads()
    out: dict[str, float] = {"texts": len(texts), "batch": EMBED_BATCH}
    try:
        for label, threads in (("threads_1", 1), (f"threads_{os.cpu_count()}", os.cpu_count())):
            torch.set_num_threads(threads or 1)
            embed_texts(texts[:EMBED_BATCH])  # warm-up (and the model's load)
            started, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(texts), EMBED_BATCH):
                embed_texts(texts[start : start + EMBED_BATCH])
            seconds = time.perf_counter() - started
            out[f"{label}_items_per_s"] = round(len(texts) / seconds, 1)
            out[f"{label}_cpu_ms_per_item"] = round(
                1000 * (time.process_time() - cpu) / len(texts), 2
            )
    finally:
        torch.set_num_threads(before)
    return out


# --- rerank and the ceiling ----------------------------------------------------------


def ranked_candidates(n: int, seed: int = 3) -> list:
    """``n`` ranked candidates with every signal the feed logs (als/similarity for part)."""
    from experience_app.public import FEATURES, Scored

    rng = random.Random(seed)
    out = []
    for i in range(n):
        signals = {name: round(rng.random() * 4, 4) for name in FEATURES}
        signals["subscribed"] = float(rng.random() < 0.2)
        if rng.random() < 0.4:
            del signals["als"]
        if rng.random() < 0.3:
            del signals["similarity"]
        out.append(Scored(1_000_000 + i, 1.0 - i / n, signals))
    return out


def rerank_latency() -> dict:
    """``rerank`` as the feed runs it, and where its time goes: the scores alone
    (``predict``) and the per-feature contributions (``pred_contrib``, TreeSHAP) of all the
    candidates or of one page of them."""
    import numpy as np

    from experience_app.public import feature_vector, load_artifact, rerank

    model = load_artifact(learned.reranker_version())
    ranked = ranked_candidates(CANDIDATES)
    rows = np.array([feature_vector(s.signals, model.features) for s in ranked])
    booster = model.booster
    calls = max(RERANK_CALLS // 5, 10)
    return {
        "candidates": CANDIDATES,
        "model": model.label,
        "trees": booster.num_trees(),
        **timed(lambda: rerank(ranked, model), RERANK_CALLS, warmup=20),
        "scores_only": timed(lambda: booster.predict(rows, num_threads=1), calls, warmup=5),
        "contributions_all": timed(
            lambda: booster.predict(rows, pred_contrib=True, num_threads=1), calls, warmup=5
        ),
        "contributions_page": timed(
            lambda: booster.predict(rows[:PAGE], pred_contrib=True, num_threads=1),
            calls,
            warmup=5,
        ),
    }


def ceiling_cpu() -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.filter(username__startswith="bench_user_").first()
    if user is None:
        raise SystemExit("bench: no world; run python -m bench.seed_world first")
    token = Token.objects.get(user=user).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")

    def call() -> None:
        response = client.get(CEILING)
        if response.status_code != 200:
            raise SystemExit(f"bench: the ceiling answered {response.status_code}")

    return timed(call, CEILING_CALLS, warmup=100)


# --- training (ml_app's command) -----------------------------------------------------


def training() -> list[dict]:
    from django.core.management import call_command

    out = VAR / "ml_training.json"
    out.unlink(missing_ok=True)
    call_command("bench_ml", data=DATASETS, json=out)
    return json.loads(out.read_text()) if out.exists() else []


def main() -> None:
    setup_django()
    VAR.mkdir(parents=True, exist_ok=True)
    say(f"embedding throughput: {EMBED_TEXTS} item texts of the world, batch {EMBED_BATCH}")
    embedding = embedding_throughput(item_texts(EMBED_TEXTS))
    say(f"rerank: {CANDIDATES} candidates x {RERANK_CALLS} calls, in process")
    rerank = rerank_latency()
    say(f"ceiling: {CEILING_CALLS} requests through the test client, in process")
    ceiling = ceiling_cpu()
    ratio = rerank["cpu_p50_ms"] / max(ceiling["cpu_p50_ms"], 1e-9)
    say(f"training: manage.py bench_ml --data {DATASETS}")
    trained = training()
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "embedding": embedding,
        "rerank": rerank,
        "ceiling_in_process": ceiling,
        "rerank_cpu_vs_ceiling_request": round(ratio, 3),
        "training": trained,
    }
    (VAR / "ml_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print(f"\nresults: {VAR / 'ml_results.json'}")


def report(results: dict) -> str:
    e, r, c = results["embedding"], results["rerank"], results["ceiling_in_process"]
    cpus = results["cpus"]
    lines = [
        f"embedding ({e['texts']} item texts, batch {e['batch']}, CPU): "
        f"{e['threads_1_items_per_s']:,.1f} items/s with 1 thread "
        f"({e['threads_1_cpu_ms_per_item']:.1f} ms CPU/item), "
        f"{e[f'threads_{cpus}_items_per_s']:,.1f} items/s with {cpus} threads",
        f"rerank {r['candidates']} candidates ({r['model']}, in process, {r['calls']} calls): "
        f"wall p50 {r['wall_p50_ms']:.2f} ms / p95 {r['wall_p95_ms']:.2f} ms; "
        f"CPU p50 {r['cpu_p50_ms']:.2f} ms / p95 {r['cpu_p95_ms']:.2f} ms",
        f"  of which: scores only (predict) CPU p50 {r['scores_only']['cpu_p50_ms']:.2f} ms; "
        f"contributions of all {r['candidates']} CPU p50 "
        f"{r['contributions_all']['cpu_p50_ms']:.2f} ms, of one page ({PAGE}) "
        f"{r['contributions_page']['cpu_p50_ms']:.2f} ms ({r['trees']} trees)",
        f"ceiling request (in process, {c['calls']} calls): CPU p50 {c['cpu_p50_ms']:.2f} ms"
        f" / p95 {c['cpu_p95_ms']:.2f} ms; wall p50 {c['wall_p50_ms']:.2f} ms",
    ]
    for t in results["training"]:
        lines.append(
            f"training {t['dataset']}: ALS {t['als_seconds']:.2f} s ({t['als_cpu_seconds']:.2f} s"
            f" CPU, {t['als_pairs']:,} pairs); LightGBM lambdarank {t['gbm_seconds']:.2f} s "
            f"({t['gbm_cpu_seconds']:.2f} s CPU, {t['gbm_rows']:,} rows, {t['gbm_groups']:,} "
            f"groups, {t['gbm_rounds']} rounds, {t['gbm_threads']} threads)"
        )
    ratio = results["rerank_cpu_vs_ceiling_request"]
    met = "MET " if ratio < 1 else "MISS"
    lines += [
        "",
        "targets:",
        f"  {met} rerank_300_cpu_vs_ceiling_request: {ratio} (target < 1; CPU p50 of one rerank"
        " over CPU p50 of one ceiling request, same process)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
