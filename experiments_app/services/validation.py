"""Validation of experiments as data. Raises ``InvalidInput`` with per-field ``details``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from experience_app import public as experience
from experiments_app.models import GUARDRAIL_METRICS, Bandit, Metric
from features_app import public as features
from inbo.errors import InvalidInput

# fullmatch, not match: "$" also matches before a trailing newline ("feed\n").
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PLATFORMS = ("web", "ios", "android")
TARGETING_KEYS = ("new_users_days", "segment", "platform")


@dataclass(frozen=True)
class VariantSpec:
    """A variant as given to a service (the admin's inline and the command build these)."""

    key: str
    weight: int
    is_control: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)


def _invalid(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={field_name: [message]})


def validate_key(key: str, field_name: str = "key") -> None:
    if not isinstance(key, str) or not _SLUG.fullmatch(key):
        raise _invalid(
            field_name,
            f"{key!r} is not a valid key: lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit, at most 64 characters.",
        )


def validate_variants(variants: Sequence[VariantSpec]) -> None:
    """At least two variants with distinct slug keys, exactly one control, integer weights
    from 0 to 100 summing to 100."""
    if len(variants) < 2:
        raise _invalid("variants", "An experiment needs at least two variants.")
    keys = [v.key for v in variants]
    for key in keys:
        validate_key(key, "variants")
    if len(set(keys)) != len(keys):
        raise _invalid("variants", "Variant keys must be distinct.")
    controls = [v.key for v in variants if v.is_control]
    if len(controls) != 1:
        raise _invalid(
            "variants", f"Exactly one variant must be the control; found {len(controls)}."
        )
    for v in variants:
        if isinstance(v.weight, bool) or not isinstance(v.weight, int) or not 0 <= v.weight <= 100:
            raise _invalid("variants", f"Variant {v.key!r}: the weight is a percent, 0 to 100.")
        if not isinstance(v.config, Mapping):
            raise _invalid("variants", f"Variant {v.key!r}: the config must be an object.")
        validate_config(v.config, field_name=f"variants.{v.key}.config")
    total = sum(v.weight for v in variants)
    if total != 100:
        raise _invalid("variants", f"Variant weights must sum to 100%; they sum to {total}%.")


def validate_traffic_share(share: int) -> None:
    if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
        raise _invalid("traffic_share", "The traffic share is a percent of the layer, 1 to 100.")


def validate_targeting(targeting: Any) -> None:
    """Empty (everyone), or any of ``{"new_users_days": int >= 1}``, ``{"segment": name}``
    (an engagement segment, ``features_app.public.ENGAGEMENT_SEGMENTS``),
    ``{"platform": "web" | "ios" | "android"}`` (all given must match)."""
    if targeting in (None, {}):
        return
    if not isinstance(targeting, dict):
        raise _invalid("targeting", "Targeting must be an object.")
    unknown = sorted(set(targeting) - set(TARGETING_KEYS))
    if unknown:
        raise _invalid(
            "targeting",
            f"Unknown targeting rule {', '.join(unknown)}; allowed: {', '.join(TARGETING_KEYS)}.",
        )
    if "new_users_days" in targeting:
        days = targeting["new_users_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise _invalid("targeting", "new_users_days must be a whole number of days, 1+.")
    if "segment" in targeting:
        segment = targeting["segment"]
        if not isinstance(segment, str) or segment not in features.ENGAGEMENT_SEGMENTS:
            raise _invalid(
                "targeting",
                f"segment must be one of {', '.join(features.ENGAGEMENT_SEGMENTS)}.",
            )
    if "platform" in targeting and targeting["platform"] not in PLATFORMS:
        raise _invalid("targeting", f"platform must be one of {', '.join(PLATFORMS)}.")


def validate_metrics(primary: str, guardrails: Iterable[str]) -> None:
    if primary not in Metric.values:
        raise _invalid(
            "primary_metric",
            f"Unknown primary metric {primary!r}; one of {', '.join(Metric.values)}.",
        )
    if isinstance(guardrails, str | bytes) or not isinstance(guardrails, Iterable):
        raise _invalid("guardrails", "Guardrails are a list of metrics.")
    guardrails = list(guardrails)
    for name in guardrails:
        if name not in GUARDRAIL_METRICS:
            raise _invalid(
                "guardrails",
                f"Unknown guardrail {name!r}; one of {', '.join(GUARDRAIL_METRICS)}.",
            )
    if len(set(guardrails)) != len(guardrails):
        raise _invalid("guardrails", "A guardrail is listed twice.")


# --- a variant's config: what it changes in the feed (docs/EXPERIMENTS.md) ---------------
CONFIG_KEYS = ("weights", "reranker", "sources_off", "section_order", "bandit", "explore")
CONFIG_MAX_BYTES = 4096
WEIGHT_LIMIT = 10.0
HALF_LIFE_RANGE = (1.0, 720.0)
_RERANKER = re.compile(r"reranker:v[1-9][0-9]{0,5}")
# The exploration slot: (type, lowest, highest, lowest is allowed, default).
EXPLORE_FIELDS: dict[str, tuple[type, float, float, bool, float]] = {
    "position": (int, 0, 19, True, 2),
    "pool": (int, 2, 50, True, 10),
    "temperature": (float, 0.0, 10.0, False, 1.0),
    "max_age_hours": (float, 0.0, 720.0, False, 48.0),
}


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def section_order_errors(order: Any) -> list[str]:
    """What is wrong with ``order`` as a section order (empty: nothing): a non-empty list
    of distinct keys of the feed's sections."""
    sections = experience.SECTION_ORDER
    if not isinstance(order, list) or not order:
        return [f"A section order is a non-empty list of sections ({', '.join(sections)})."]
    errors = []
    unknown = [s for s in order if not isinstance(s, str) or s not in sections]
    if unknown:
        errors.append(f"Unknown section {unknown[0]!r}; the sections are {', '.join(sections)}.")
    elif len(set(order)) != len(order):
        errors.append("A section is listed twice.")
    return errors


def _weights_errors(weights: Any) -> dict[str, list[str]]:
    names = [f.name for f in fields(experience.Weights)]
    if not isinstance(weights, dict) or not weights:
        return {"": ["weights is a non-empty object {signal: number}."]}
    errors: dict[str, list[str]] = {}
    for name, value in weights.items():
        if name not in names:
            errors[name] = [f"Unknown signal {name!r}; one of {', '.join(names)}."]
        elif name == "freshness_half_life_hours":
            low, high = HALF_LIFE_RANGE
            if not _number(value) or not low <= value <= high:
                errors[name] = [f"A half-life in hours, from {low:g} to {high:g}."]
        elif not _number(value) or not -WEIGHT_LIMIT <= value <= WEIGHT_LIMIT:
            errors[name] = [f"A weight is a number from -{WEIGHT_LIMIT:g} to {WEIGHT_LIMIT:g}."]
    return errors


def _explore_errors(explore: Any) -> dict[str, list[str]]:
    if not isinstance(explore, dict):
        return {"": ["explore is an object (every field optional): " + ", ".join(EXPLORE_FIELDS)]}
    errors: dict[str, list[str]] = {}
    for name, value in explore.items():
        if name not in EXPLORE_FIELDS:
            errors[name] = [f"Unknown field {name!r}; one of {', '.join(EXPLORE_FIELDS)}."]
            continue
        kind, low, high, closed, _default = EXPLORE_FIELDS[name]
        ok = _number(value) and (kind is float or isinstance(value, int))
        ok = ok and (low <= value if closed else low < value) and value <= high
        if not ok:
            interval = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g}]"
            what = "a whole number" if kind is int else "a number"
            errors[name] = [f"{name} is {what} in {interval}."]
    return errors


def explore_settings(explore: Mapping[str, Any]) -> dict[str, Any]:
    """A validated ``explore`` config with every field, defaults filled in."""
    return {
        name: explore.get(name, default)
        for name, (_kind, _low, _high, _closed, default) in EXPLORE_FIELDS.items()
    }


def config_errors(config: Any, *, check_bandit: bool = True) -> dict[str, list[str]]:
    """Every problem of a variant's config, by field path (empty: valid). The bandit's
    existence is checked with one query when the config names one (``check_bandit``)."""
    if not isinstance(config, Mapping):
        return {"": ["The config must be an object."]}
    try:
        size = len(json.dumps(config, allow_nan=False).encode())
    except (TypeError, ValueError):
        return {"": ["The config must be plain JSON (no NaN or infinity)."]}
    if size > CONFIG_MAX_BYTES:
        return {"": [f"The config is {size} bytes; at most {CONFIG_MAX_BYTES}."]}
    errors: dict[str, list[str]] = {}
    for name in config:
        if name not in CONFIG_KEYS:
            errors[str(name)] = [f"Unknown config key {name!r}; allowed: {', '.join(CONFIG_KEYS)}."]
    if "weights" in config:
        for path, messages in _weights_errors(config["weights"]).items():
            errors[f"weights.{path}" if path else "weights"] = messages
    if "reranker" in config:
        reranker = config["reranker"]
        if not isinstance(reranker, str) or not (
            reranker in ("linear", "active") or _RERANKER.fullmatch(reranker)
        ):
            errors["reranker"] = ['"linear", "active" or a version "reranker:v<N>".']
    if "sources_off" in config:
        off = config["sources_off"]
        sources = experience.SOURCES
        if not isinstance(off, list) or not all(isinstance(s, str) for s in off):
            errors["sources_off"] = [f"A list of sources ({', '.join(sources)})."]
        elif unknown := [s for s in off if s not in sources]:
            errors["sources_off"] = [
                f"Unknown source {unknown[0]!r}; the sources are {', '.join(sources)}."
            ]
        elif len(set(off)) != len(off):
            errors["sources_off"] = ["A source is listed twice."]
    if "section_order" in config and (problems := section_order_errors(config["section_order"])):
        errors["section_order"] = problems
    if "bandit" in config:
        bandit = config["bandit"]
        if not isinstance(bandit, str) or not _SLUG.fullmatch(bandit):
            errors["bandit"] = ["The key of a bandit (a slug)."]
        elif check_bandit and not Bandit.objects.filter(key=bandit).exists():
            errors["bandit"] = [f"No bandit {bandit!r}; create it first (manage.py bandit)."]
    if "explore" in config:
        for path, messages in _explore_errors(config["explore"]).items():
            errors[f"explore.{path}" if path else "explore"] = messages
    return errors


def validate_config(config: Any, *, field_name: str = "config") -> None:
    """A variant's config holds only ``CONFIG_KEYS`` with valid values (docs/EXPERIMENTS.md,
    "Variants in the feed and bandits"); InvalidInput with every problem by field path."""
    errors = config_errors(config)
    if not errors:
        return
    details = {(f"{field_name}.{path}" if path else field_name): m for path, m in errors.items()}
    first_path, first = next(iter(details.items()))
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    raise InvalidInput(f"{first_path}: {first[0]}{more}", details=details)
