"""Writing rules: every create, update and delete is validated and recorded as a
``RuleVersion`` (who, when, what changed), in one transaction. The API and the admin both
write through here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from inbo.errors import NotFound
from rules_app import snapshot, validation
from rules_app.models import Rule, RuleVersion

STORED = (*validation.COMMON_FIELDS, *validation.KIND_FIELDS)


def as_data(rule: Rule) -> dict[str, Any]:
    """The rule's stored fields as a plain dict (what versions keep, what updates merge)."""
    return {f: getattr(rule, f) for f in STORED}


def _json(data: Mapping[str, Any]) -> dict[str, Any]:
    encoder = DjangoJSONEncoder()
    return {k: (encoder.default(v) if hasattr(v, "isoformat") else v) for k, v in data.items()}


def _record(rule_id: int, action: str, user: Any, after: dict, before: dict | None) -> None:
    changes = {}
    if before is not None:
        changes = {f: [before[f], after[f]] for f in after if f in before and before[f] != after[f]}
    RuleVersion.objects.create(
        rule_id=rule_id,
        action=action,
        changed_by=user if getattr(user, "pk", None) else None,
        data=after,
        changes=changes,
    )
    # This process sees the change at once; the others within RULES_REFRESH_SECONDS.
    transaction.on_commit(snapshot.forget)


def rule_get(rule_id: int) -> Rule:
    rule = Rule.objects.filter(id=rule_id).first() if 0 < rule_id < 2**63 else None
    if rule is None:
        raise NotFound("No such rule.", details={"rule_id": rule_id})
    return rule


@transaction.atomic
def rule_create(data: Mapping[str, Any], *, user: Any) -> Rule:
    """A new rule from ``data`` (validated: 400 or 409), recorded as created by ``user``."""
    clean = validation.validate({**validation.EMPTY, "active": True, **data})
    rule = Rule.objects.create(**clean, updated_by=user if getattr(user, "pk", None) else None)
    _record(rule.id, RuleVersion.Action.CREATE, user, _json(clean), None)
    return rule


@transaction.atomic
def rule_update(rule_id: int, changes: Mapping[str, Any], *, user: Any) -> Rule:
    """``changes`` applied to the rule and the result validated as a whole."""
    rule_get(rule_id)
    rule = Rule.objects.select_for_update().get(id=rule_id)
    before = as_data(rule)
    clean = validation.validate({**before, **changes}, rule_id=rule.id)
    for field, value in clean.items():
        setattr(rule, field, value)
    rule.updated_by = user if getattr(user, "pk", None) else None
    rule.save()
    _record(rule.id, RuleVersion.Action.UPDATE, user, _json(clean), _json(before))
    return rule


@transaction.atomic
def rule_delete(rule_id: int, *, user: Any) -> None:
    rule = rule_get(rule_id)
    before = _json(as_data(rule))
    rule.delete()
    _record(rule_id, RuleVersion.Action.DELETE, user, before, None)


def record_admin_save(rule: Rule, *, user: Any, before: dict[str, Any] | None) -> None:
    """The admin saved ``rule`` (its form ran :func:`validation.validate`): record it."""
    action = RuleVersion.Action.CREATE if before is None else RuleVersion.Action.UPDATE
    _record(rule.id, action, user, _json(as_data(rule)), _json(before) if before else None)
