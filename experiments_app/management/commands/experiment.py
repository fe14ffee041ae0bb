"""``manage.py experiment``: create, start, stop and list experiments (through the services)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments_app.models import Experiment, Metric
from experiments_app.services import lifecycle
from experiments_app.services.validation import VariantSpec
from inbo.errors import ApplicationError


def _variant(value: str) -> tuple[str, int]:
    key, sep, weight = value.rpartition(":")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY:WEIGHT, got {value!r}")
    try:
        return key, int(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the weight of {value!r} is not a whole number") from None


def _config(value: str) -> tuple[str, dict[str, Any]]:
    key, sep, raw = value.partition("=")
    try:
        config = json.loads(raw) if sep else None
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"the config of {key!r} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise argparse.ArgumentTypeError(f"expected KEY='{{...json object...}}', got {value!r}")
    return key, config


def _targeting(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--target is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("--target must be a JSON object")
    return parsed


class Command(BaseCommand):
    """Experiments as data from the shell; the same validation and lifecycle as the admin."""

    help = (
        "Manage experiments. create KEY --layer L --hypothesis TEXT --variant control:50 "
        '--variant treatment:50 [--control KEY] [--config treatment=\'{"reranker": '
        '"reranker:v3"}\'] [--traffic PERCENT] [--target \'{"platform": "web"}\'] '
        "[--primary METRIC] [--guardrail METRIC ...] creates a draft (the first variant is "
        "the control unless --control names another); start KEY runs a draft in a free slot "
        "of its layer; stop KEY stops a running one for good; list prints them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a draft experiment.")
        create.add_argument("key")
        create.add_argument("--layer", required=True)
        create.add_argument("--hypothesis", required=True)
        create.add_argument("--variant", type=_variant, action="append", required=True)
        create.add_argument("--control", default=None)
        create.add_argument("--config", type=_config, action="append", default=[])
        create.add_argument("--traffic", type=int, default=100)
        create.add_argument("--target", type=_targeting, default=None)
        create.add_argument("--primary", default=Metric.HOME_CTR)
        create.add_argument("--guardrail", action="append", default=[])
        sub.add_parser("start", help="Start an experiment.").add_argument("key")
        stop = sub.add_parser("stop", help="Stop an experiment.")
        stop.add_argument("key")
        stop.add_argument("--reason", default="", help="Why (kept with the experiment).")
        sub.add_parser("list", help="List experiments.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            if action == "create":
                self._create(**options)
            elif action == "start":
                started = lifecycle.experiment_start(lifecycle.experiment_get(options["key"]))
                self.stdout.write(
                    f"{started.key} is running in layer {started.layer.key}, buckets "
                    f"[{started.layer_slot_start}, {started.layer_slot_end})."
                )
            elif action == "stop":
                stopped = lifecycle.experiment_stop(
                    lifecycle.experiment_get(options["key"]), reason=options["reason"]
                )
                self.stdout.write(f"{stopped.key} is stopped.")
            else:
                self._list()
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _create(
        self,
        *,
        key: str,
        layer: str,
        hypothesis: str,
        variant: list[tuple[str, int]],
        control: str | None,
        config: list[tuple[str, dict[str, Any]]],
        traffic: int,
        target: dict[str, Any] | None,
        primary: str,
        guardrail: list[str],
        **_: Any,
    ) -> None:
        control = control or variant[0][0]
        configs = dict(config)
        unknown = set(configs) - {k for k, _ in variant}
        if control not in {k for k, _ in variant} or unknown:
            raise CommandError("--control and --config must name variants given with --variant")
        experiment = lifecycle.experiment_create(
            key=key,
            hypothesis=hypothesis,
            layer_key=layer,
            variants=[
                VariantSpec(k, w, is_control=k == control, config=configs.get(k, {}))
                for k, w in variant
            ],
            traffic_share=traffic,
            targeting=target,
            primary_metric=primary,
            guardrails=guardrail,
        )
        split = ", ".join(f"{k} {w}%" for k, w in variant)
        self.stdout.write(f"{experiment.key} created as a draft in layer {layer}: {split}.")

    def _list(self) -> None:
        rows = Experiment.objects.select_related("layer").prefetch_related("variants")
        for e in rows.order_by("layer__key", "key"):
            slot = (
                "-" if e.layer_slot_start is None else f"[{e.layer_slot_start},{e.layer_slot_end})"
            )
            split = " ".join(
                f"{v.key}{'*' if v.is_control else ''}:{v.weight}" for v in e.variants.all()
            )
            self.stdout.write(
                f"{e.key}\t{e.layer.key}\t{e.status}\t{e.traffic_share}%\t{slot}\t"
                f"{e.primary_metric}\t{split}"
            )
