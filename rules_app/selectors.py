"""Reading rules and their history."""

from __future__ import annotations

from django.db.models import QuerySet

from rules_app.models import Rule, RuleVersion


def rule_list(*, kind: str | None = None) -> QuerySet[Rule]:
    rules = Rule.objects.select_related("updated_by").order_by("-updated_at", "-id")
    return rules.filter(kind=kind) if kind else rules


def rule_versions(rule_id: int, *, limit: int = 50) -> QuerySet[RuleVersion]:
    """The rule's changes, newest first."""
    return RuleVersion.objects.select_related("changed_by").filter(rule_id=rule_id)[:limit]
