"""Validation of experiments as data. Raises ``InvalidInput`` with per-field ``details``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from experiments_app.models import GUARDRAIL_METRICS, Metric
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
    total = sum(v.weight for v in variants)
    if total != 100:
        raise _invalid("variants", f"Variant weights must sum to 100%; they sum to {total}%.")


def validate_traffic_share(share: int) -> None:
    if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
        raise _invalid("traffic_share", "The traffic share is a percent of the layer, 1 to 100.")


def validate_targeting(targeting: Any) -> None:
    """Empty (everyone), or any of ``{"new_users_days": int >= 1}``, ``{"segment": slug}``,
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
        if not isinstance(segment, str) or not _SLUG.fullmatch(segment):
            raise _invalid("targeting", "segment must be a segment key (a slug).")
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
