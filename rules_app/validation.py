"""Validation of a rule, alone (400 ``InvalidInput``, naming the field) and against the other
active rules (409 ``Conflict``): the API and the admin call the same checks.

A rule is checked as it would be stored (for an update: the stored rule with the changes
applied), so a change can never leave a contradiction behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from inbo.errors import Conflict, InvalidInput
from reading_app import public as reading
from rules_app.models import Rule

# Every field a rule stores, by kind (the others are cleared on save).
FIELDS_OF = {
    Rule.Kind.SPONSORED: (
        "provider_id",
        "item_ids",
        "budget",
        "positions",
        "user_cap_per_day",
        "relevance_floor",
    ),
    Rule.Kind.BLOCK: ("target", "target_id", "keyword"),
    Rule.Kind.BOOST: ("target", "target_id", "mode", "value"),
    Rule.Kind.DIVERSITY: ("max_per_provider", "max_per_category", "mmr_lambda"),
}
KIND_FIELDS = sorted({f for fields in FIELDS_OF.values() for f in fields})
COMMON_FIELDS = ("name", "kind", "active", "starts_at", "ends_at")
EMPTY: dict[str, Any] = {
    "target": "",
    "target_id": None,
    "keyword": "",
    "mode": "",
    "value": None,
    "provider_id": None,
    "item_ids": [],
    "budget": None,
    "positions": [],
    "user_cap_per_day": None,
    "relevance_floor": None,
    "max_per_provider": None,
    "max_per_category": None,
    "mmr_lambda": None,
}
TARGETS = {
    Rule.Kind.BLOCK: ("provider", "item", "keyword"),
    Rule.Kind.BOOST: ("provider", "category", "item"),
}
MAX_ITEMS = 100
MAX_MULTIPLIER = 100.0
MAX_ADDEND = 10.0
KEYWORD = re.compile(r"^[\w][\w' -]{0,98}[\w]$|^\w$")


def _need(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def normalized(data: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's fields with those its kind does not use cleared."""
    kind = str(data.get("kind") or "")
    out = {f: data.get(f) for f in COMMON_FIELDS}
    out.update({f: data.get(f, EMPTY[f]) for f in KIND_FIELDS})
    for field in KIND_FIELDS:
        if field not in FIELDS_OF.get(kind, ()):  # type: ignore[call-overload,arg-type]
            out[field] = EMPTY[field]
    if out.get("keyword"):
        out["keyword"] = " ".join(str(out["keyword"]).split()).lower()
    if out.get("item_ids"):
        out["item_ids"] = sorted(set(out["item_ids"] or ()))
    if out.get("positions"):
        out["positions"] = sorted(out["positions"] or ())
    return out


def validate(data: Mapping[str, Any], *, rule_id: int | None = None) -> dict[str, Any]:
    """``data`` (every field of a rule) normalized, or ``InvalidInput`` naming each bad
    field, or ``Conflict`` naming the active rules it contradicts."""
    rule = normalized(data)
    errors: dict[str, list[str]] = {}
    kind = rule["kind"]
    if kind not in Rule.Kind.values:
        _need(errors, "kind", f"One of {', '.join(Rule.Kind.values)}.")
        raise InvalidInput(_message(errors), details=errors)
    if not str(rule.get("name") or "").strip():
        _need(errors, "name", "A rule needs a name.")
    starts, ends = rule["starts_at"], rule["ends_at"]
    if starts and ends and ends <= starts:
        _need(errors, "ends_at", "The end must come after the start.")
    if kind == Rule.Kind.SPONSORED:
        _sponsored(rule, errors)
    elif kind == Rule.Kind.DIVERSITY:
        _diversity(rule, errors)
    else:
        _targeted(rule, errors)
    if errors:
        raise InvalidInput(_message(errors), details=errors)
    _known_ids(rule)
    if rule["active"]:
        _contradictions(rule, rule_id)
    return rule


def _message(errors: Mapping[str, list[str]]) -> str:
    messages = next(iter(errors.values()))
    return messages[0] if len(errors) == 1 else f"Invalid input in: {', '.join(errors)}."


def _sponsored(rule: dict[str, Any], errors: dict[str, list[str]]) -> None:
    if not rule["starts_at"]:
        _need(errors, "starts_at", "A campaign needs a start.")
    if not rule["ends_at"]:
        _need(errors, "ends_at", "A campaign needs an end.")
    if rule["provider_id"] is None and not rule["item_ids"]:
        _need(errors, "item_ids", "A campaign needs a provider, items, or both.")
    if len(rule["item_ids"]) > MAX_ITEMS:
        _need(errors, "item_ids", f"At most {MAX_ITEMS} items.")
    if rule["budget"] is None or rule["budget"] < 1:
        _need(errors, "budget", "A budget of at least 1 impression.")
    if rule["user_cap_per_day"] is None or rule["user_cap_per_day"] < 1:
        _need(errors, "user_cap_per_day", "A cap of at least 1 a day.")
    page = settings.EXPERIENCE_SECTION_PAGE_SIZE
    positions = list(data_positions(rule))
    if not positions:
        _need(errors, "positions", "At least one slot position.")
    elif any(p < 0 or p >= page for p in positions):
        _need(errors, "positions", f"Positions are from 0 to {page - 1} (the first page).")
    elif len(set(positions)) != len(positions):
        _need(errors, "positions", "A position is named twice.")
    floor = rule["relevance_floor"]
    if floor is not None and not -1e6 <= floor <= 1e6:
        _need(errors, "relevance_floor", "A floor between -1e6 and 1e6.")


def data_positions(rule: Mapping[str, Any]) -> Iterable[int]:
    return rule.get("positions") or ()


def _diversity(rule: dict[str, Any], errors: dict[str, list[str]]) -> None:
    caps = ("max_per_provider", "max_per_category")
    if all(rule[f] is None for f in caps) and rule["mmr_lambda"] is None:
        _need(errors, "max_per_provider", "Set a cap per provider or category, or a lambda.")
    for field in caps:
        if rule[field] is not None and rule[field] < 1:
            _need(errors, field, "A cap of at least 1.")
    lam = rule["mmr_lambda"]
    if lam is not None and not 0.0 <= lam <= 1.0:
        _need(errors, "mmr_lambda", "A lambda from 0 to 1.")


def _targeted(rule: dict[str, Any], errors: dict[str, list[str]]) -> None:
    kind = rule["kind"]
    target = rule["target"]
    if target not in TARGETS[kind]:
        _need(errors, "target", f"One of {', '.join(TARGETS[kind])}.")
        return
    if target == Rule.Target.KEYWORD:
        if not KEYWORD.match(rule["keyword"] or ""):
            _need(errors, "keyword", "Words of letters and digits, 1 to 100 characters.")
        rule["target_id"] = None
    else:
        if rule["target_id"] is None:
            _need(errors, "target_id", f"The {target}'s id.")
        rule["keyword"] = ""
    if kind == Rule.Kind.BOOST:
        value, mode = rule["value"], rule["mode"]
        if mode not in Rule.Mode.values:
            _need(errors, "mode", f"One of {', '.join(Rule.Mode.values)}.")
        elif value is None:
            _need(errors, "value", "A boost needs a value.")
        elif mode == Rule.Mode.MULTIPLY and not 0.0 < value <= MAX_MULTIPLIER:
            _need(errors, "value", f"A factor above 0, at most {MAX_MULTIPLIER:g}.")
        elif mode == Rule.Mode.ADD and not -MAX_ADDEND <= value <= MAX_ADDEND:
            _need(errors, "value", f"An addend from {-MAX_ADDEND:g} to {MAX_ADDEND:g}.")


def _known_ids(rule: dict[str, Any]) -> None:
    """Unknown provider, item or category ids are a 400 naming them."""
    errors: dict[str, list[str]] = {}
    target, target_id = rule["target"], rule["target_id"]
    if target_id is not None and not _exists(target, [target_id]):
        _need(errors, "target_id", f"No {target} {target_id}.")
    if rule["provider_id"] is not None and not _exists("provider", [rule["provider_id"]]):
        _need(errors, "provider_id", f"No provider {rule['provider_id']}.")
    if rule["item_ids"]:
        missing = sorted(set(rule["item_ids"]) - set(_items(rule["item_ids"])))
        if missing:
            _need(errors, "item_ids", f"No items {missing[:10]}.")
    if errors:
        raise InvalidInput(_message(errors), details=errors)


def _items(ids: Iterable[int]) -> dict[int, reading.ItemFacets]:
    return reading.item_facets([i for i in ids if 0 < i < 2**63])


def _exists(target: str, ids: list[int]) -> bool:
    ids = [i for i in ids if 0 < i < 2**63]
    if not ids:
        return False
    if target == "provider":
        return len(reading.provider_cards(ids)) == len(ids)
    if target == "category":
        return len(reading.category_names(ids)) == len(ids)
    return len(_items(ids)) == len(ids)


def _overlap(a: Mapping[str, Any], b: Rule) -> bool:
    """Whether two rules' times ``[starts_at, ends_at)`` overlap (a missing bound is open)."""
    a_start, a_end = a["starts_at"], a["ends_at"]
    return (a_end is None or b.starts_at is None or b.starts_at < a_end) and (
        b.ends_at is None or a_start is None or a_start < b.ends_at
    )


def _sponsored_items(rule: Mapping[str, Any] | Rule) -> tuple[int | None, set[int]]:
    if isinstance(rule, Rule):
        return rule.provider_id, set(rule.item_ids)
    return rule["provider_id"], set(rule["item_ids"])


def _contradictions(rule: dict[str, Any], rule_id: int | None) -> None:
    """409 when the rule contradicts an active one: an item (or its provider) both blocked
    and boosted or sponsored; two campaigns with a slot in common at overlapping times; two
    diversity rules at overlapping times."""
    others = [
        r for r in Rule.objects.filter(active=True).exclude(id=rule_id or 0) if _overlap(rule, r)
    ]
    kind = rule["kind"]
    found: list[str] = []
    blocks = [r for r in others if r.kind == Rule.Kind.BLOCK]
    if kind == Rule.Kind.SPONSORED:
        for other in others:
            if other.kind == Rule.Kind.SPONSORED:
                shared = set(rule["positions"]) & set(other.positions)
                if shared:
                    found.append(f"campaign {other.id} holds position(s) {sorted(shared)}")
    if kind == Rule.Kind.DIVERSITY:
        found += [
            f"diversity rule {o.id} applies at the same time"
            for o in others
            if o.kind == Rule.Kind.DIVERSITY
        ]
    # Block against boost/sponsored, whichever is the one being saved.
    pairs: list[tuple[Any, Any]]
    if kind == Rule.Kind.BLOCK:
        pairs = [(rule, o) for o in others if o.kind in (Rule.Kind.BOOST, Rule.Kind.SPONSORED)]
    elif kind in (Rule.Kind.BOOST, Rule.Kind.SPONSORED):
        pairs = [(o, rule) for o in blocks]
    else:
        pairs = []
    for block, other in pairs:
        reason = _blocked_and_promoted(block, other)
        if reason:
            found.append(reason)
    if found:
        message = "This rule contradicts active rules: " + "; ".join(found) + "."
        raise Conflict(message, details={"conflicts": found})


def _get(rule: Mapping[str, Any] | Rule, field: str) -> Any:
    return getattr(rule, field) if isinstance(rule, Rule) else rule[field]


def _blocked_and_promoted(block: Mapping[str, Any] | Rule, other: Mapping[str, Any] | Rule) -> str:
    """Why ``other`` (a boost or a campaign) promotes what ``block`` removes; "" if not."""
    target, target_id = _get(block, "target"), _get(block, "target_id")
    other_id = _get(other, "id") if isinstance(other, Rule) else None
    block_id = _get(block, "id") if isinstance(block, Rule) else None
    name = f"rule {other_id}" if other_id else f"block {block_id}"
    if _get(other, "kind") == Rule.Kind.BOOST:
        o_target, o_id = _get(other, "target"), _get(other, "target_id")
        if o_target == target and o_id == target_id:
            return f"{name}: {target} {target_id} is both blocked and boosted"
        if target == "provider" and o_target == "item":
            facets = _items([o_id])
            if o_id in facets and facets[o_id].provider_id == target_id:
                return f"{name}: item {o_id} is boosted, its provider blocked"
        return ""
    provider_id, item_ids = _sponsored_items(other)
    if target == "item" and target_id in item_ids:
        return f"{name}: item {target_id} is both blocked and sponsored"
    if target == "provider":
        if provider_id == target_id:
            return f"{name}: provider {target_id} is both blocked and sponsored"
        providers = {f.provider_id for f in _items(item_ids).values()}
        if target_id in providers:
            return f"{name}: a sponsored item's provider {target_id} is blocked"
    return ""
