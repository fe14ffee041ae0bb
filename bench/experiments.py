"""The experiments path in the benchmark world: two running experiments and a bandit.

``make bench`` measures the home feed a third time, on the linear path's settings (no
learned candidates, ``ML_RERANKER_ENABLED=false``) with real experiments running, started
through experiments_app's services as an operator would:

- ``bench-weights`` in layer ``bench``: 100% of the layer, ``control``/``treat`` 50/50,
  ``treat`` changing the ranking weights;
- ``bench-sections`` in layer ``bench-sections``: 100% of that layer, ``control``/``treat``
  50/50, ``treat`` letting a Thompson bandit (``bench-sections``, 3 arms) pick the order of
  the sections on every build.

So every user is in both experiments (layers are independent) and, on a feed build, the
feed logs two exposures (one per experiment, the first time only) and, for the half in
``bench-sections``' treat, one bandit decision: what issue 12 adds to a cold build. On a
cache hit it adds the treatment check (assignment in process, no query) and nothing else.

Everything is created at the start of the phase and deleted at its end, and whatever a run
that did not finish left behind is deleted before the next starts: experiments (their
variants and exposures go with them), the bandit (its snapshots) and its decisions, the
two layers, and the bandit's state in Redis.
"""

from __future__ import annotations

LAYERS = ("bench", "bench-sections")
WEIGHTS_EXPERIMENT = "bench-weights"
ORDER_EXPERIMENT = "bench-sections"
EXPERIMENTS = (WEIGHTS_EXPERIMENT, ORDER_EXPERIMENT)
BANDIT = "bench-sections"
HYPOTHESIS = "bench: what running experiments cost the home feed; cost only, not quality"
# Changes the order of the candidates (not only their scores), as a real weights test does.
TREAT_WEIGHTS = {"freshness": 0.8, "popularity": 0.7, "affinity": 1.3}


def arms() -> dict[str, list[str]]:
    """Three section orders: the feed's default and two others."""
    from experience_app.public import SECTION_ORDER

    default = list(SECTION_ORDER)
    fresh_first = ["fresh", "trending", *[s for s in default if s not in ("fresh", "trending")]]
    return {"default": default, "fresh-first": fresh_first, "reversed": default[::-1]}


def start() -> dict[str, str]:
    """Create and start the bench experiments and their bandit (after deleting any left
    over); returns {experiment key: its layer}."""
    from experiments_app.public import (
        VariantSpec,
        bandit_create,
        experiment_create,
        experiment_start,
    )

    forget()
    bandit_create(BANDIT, kind="thompson", arms=arms())
    treat_configs = {
        WEIGHTS_EXPERIMENT: (LAYERS[0], {"weights": TREAT_WEIGHTS}),
        ORDER_EXPERIMENT: (LAYERS[1], {"bandit": BANDIT}),
    }
    for key, (layer, config) in treat_configs.items():
        experiment = experiment_create(
            key=key,
            hypothesis=HYPOTHESIS,
            layer_key=layer,
            traffic_share=100,
            variants=[
                VariantSpec("control", 50, is_control=True),
                VariantSpec("treat", 50, config=config),
            ],
        )
        experiment_start(experiment)
    return {key: layer for key, (layer, _config) in treat_configs.items()}


def logged() -> dict[str, int]:
    """Exposures to the bench experiments and decisions of the bench bandit so far."""
    from django.apps import apps

    exposure = apps.get_model("experiments_app.Exposure")
    decision = apps.get_model("experiments_app.Decision")
    return {
        "exposures": exposure.objects.filter(experiment__key__in=EXPERIMENTS).count(),
        "decisions": decision.objects.filter(kind="bandit", key=BANDIT).count(),
    }


def stop() -> None:
    """Stop the bench experiments still running (through the lifecycle service)."""
    from django.apps import apps

    from experiments_app.public import experiment_stop

    experiment = apps.get_model("experiments_app.Experiment")
    for row in experiment.objects.filter(key__in=EXPERIMENTS, status="running"):
        experiment_stop(row, reason="bench: run over")


def forget() -> None:
    """Stop, then delete, everything the experiments phase creates (module docstring), so
    every run starts from none of it."""
    from django.apps import apps

    from inbo import keys
    from inbo import redis as inbo_redis

    stop()
    model = apps.get_model
    model("experiments_app.Experiment").objects.filter(key__in=EXPERIMENTS).delete()
    model("experiments_app.Decision").objects.filter(kind="bandit", key=BANDIT).delete()
    model("experiments_app.Bandit").objects.filter(key=BANDIT).delete()
    # A layer of another experiment (none in the bench world) is kept: PROTECT would refuse.
    model("experiments_app.Layer").objects.filter(key__in=LAYERS, experiments=None).delete()
    inbo_redis.state().delete(keys.bandit_state(BANDIT))


def report(figures: dict, ratios: dict) -> list[str]:
    """The experiments path's lines of ``make bench``'s table."""
    f, r = figures, ratios
    cold, warm = f["home_cold"], f["home_warm"]
    ec, ew = f["home_cold_experiments"], f["home_warm_experiments"]

    def app(x: dict) -> float:
        return float(x["cpu_ms_per_request"]["app"])

    variants = ", ".join(f"{k}={v}" for k, v in sorted(ec["experiments"].items()))
    return [
        f"experiments path ({variants} in a sample answer): app CPU per request cold "
        f"{app(ec):.2f} vs {app(cold):.2f} ms = {r['experiments_cold_app_cpu_vs_linear']:.2f}x"
        f", warm {app(ew):.2f} vs {app(warm):.2f} ms = "
        f"{r['experiments_warm_app_cpu_vs_linear']:.2f}x; app+pg+redis cold "
        f"{r['experiments_cold_cpu_cost_vs_linear']:.2f}x, warm "
        f"{r['experiments_warm_cpu_cost_vs_linear']:.2f}x",
        f"experiments logged: cold run {ec['exposures']:,} exposures and {ec['decisions']:,} "
        f"bandit decisions over {ec['requests']:,} requests; warm run (after priming "
        f"{ew['primed_exposures']:,} exposures, {ew['primed_decisions']:,} decisions) "
        f"{ew['exposures']:,} exposures, {ew['decisions']:,} decisions",
        f"experiments feed cache: warm run {ew['cache_hits']:,} hits / "
        f"{ew['cache_misses']:,} misses; cold run {ec['cache_hits']:,} hits / "
        f"{ec['cache_misses']:,} misses",
    ]
