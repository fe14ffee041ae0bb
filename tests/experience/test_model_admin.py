"""The model registry's admin (``ModelVersionAdmin``): the changelist with each version's gate,
the promote and rollback actions (which check the gate as ``manage.py model_promote`` does),
no add, and the artifact never shown. Versions hold real LightGBM artifacts."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import lightgbm as lgb
import numpy as np
import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from experience_app.learned import FEATURES
from experience_app.models import ModelVersion
from experience_app.services import registry
from inbo.errors import NotFound

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/experience_app/modelversion/"
NOW = timezone.now()


@cache
def _artifact() -> bytes:
    """A small lambdarank booster over the reranker's features (real LightGBM)."""
    rng = np.random.default_rng(0)
    x = rng.random((200, len(FEATURES)))
    y = (x[:, 0] * 3).astype(int)
    data = lgb.Dataset(x, label=y, group=[10] * 20)
    params = {"objective": "lambdarank", "min_data_in_leaf": 5, "verbosity": -1, "seed": 0}
    booster = lgb.train({**params, "num_threads": 1}, data, num_boost_round=3)
    return booster.model_to_string().encode()


def gate(*, passed: bool = True, against: int | None = None, **extra) -> dict:
    return {
        "passed": passed,
        "metric": "ndcg@10",
        "candidate": 0.5 if passed else 0.3,
        "baseline": 0.4,
        "baseline_name": "linear" if against is None else f"version {against}",
        "baseline_version": against,
        **extra,
    }


def register(kind: str = "reranker", **gate_kwargs) -> ModelVersion:
    return registry.register(
        kind,
        _artifact(),
        trained_from=NOW - timedelta(days=7),
        trained_to=NOW - timedelta(days=1),
        params={"objective": "lambdarank"},
        metrics={"ndcg@10_validation": 0.5},
        gate=gate(**gate_kwargs),
        features=FEATURES,
    )


def act(client, action: str, *versions: ModelVersion) -> list[tuple[int, str]]:
    """POST an action on the changelist; the messages it left, as (level, text)."""
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [v.id for v in versions]}
    )
    assert response.status_code == 302
    left = [(m.level, m.message) for m in get_messages(response.wsgi_request)]
    client.cookies.pop("messages", None)  # shown once: not carried into the next request
    return left


def statuses() -> dict[str, str]:
    return {v.label: v.status for v in ModelVersion.objects.all()}


def test_the_changelist_shows_each_version_with_its_gate(admin_client):
    register()
    register(passed=False)
    registry.register(
        "als",
        b"not read by the admin",
        trained_from=NOW - timedelta(days=7),
        trained_to=NOW,
        params={},
        metrics={},
        gate={},
    )
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "passed: ndcg@10 0.5 vs 0.4 (linear)" in page
    assert "failed: ndcg@10 0.3 vs 0.4 (linear)" in page
    assert '<td class="field-gate_summary">-</td>' in page  # no gate recorded
    assert "Promote the selected candidate (checks its gate)" in page
    assert "Roll back the active version of the selected kind" in page
    filtered = admin_client.get(CHANGELIST, {"kind__exact": "als", "status__exact": "candidate"})
    assert filtered.status_code == 200
    assert "ndcg@10" not in filtered.content.decode()


def test_adding_a_version_by_hand_is_not_permitted(admin_client):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert (
        "/admin/experience_app/modelversion/add/"
        not in admin_client.get(CHANGELIST).content.decode()
    )


def test_the_change_page_shows_the_version_but_never_its_artifact(admin_client):
    version = register()
    response = admin_client.get(f"{CHANGELIST}{version.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert version.artifact_sha256 in page  # read-only fields are shown
    assert "field-artifact_bytes" in page
    assert "field-artifact " not in page and 'field-artifact"' not in page
    assert "tree_sizes" not in page and "Tree=0" not in page  # the booster's text
    # Nothing on the page is editable: a POST changes nothing.
    admin_client.post(f"{CHANGELIST}{version.id}/change/", {"status": "active", "note": "x"})
    version.refresh_from_db()
    assert version.status == "candidate" and version.note == ""


def test_promote_makes_a_candidate_whose_gate_passed_the_active_version(admin_client):
    version = register()
    assert act(admin_client, "promote_selected", version) == [
        (messages.SUCCESS, "reranker:v1 is now active.")
    ]
    version.refresh_from_db()
    assert version.status == "active" and version.promoted_at is not None
    assert registry.active("reranker").id == version.id

    # The next one was gated against the version now active: it replaces it.
    second = register(against=version.id)
    assert act(admin_client, "promote_selected", second)[0][0] == messages.SUCCESS
    assert statuses() == {"reranker:v1": "retired", "reranker:v2": "active"}
    second.refresh_from_db()
    assert second.previous_id == version.id


def test_promote_refuses_a_failed_gate_and_changes_nothing(admin_client):
    failed = register(passed=False)
    [(level, text)] = act(admin_client, "promote_selected", failed)
    assert level == messages.ERROR
    assert text == (
        "reranker:v1 cannot be promoted: its gate did not pass: ndcg@10 0.3 vs 0.4 (linear)."
    )
    assert statuses() == {"reranker:v1": "candidate"}
    assert registry.active("reranker") is None


def test_promote_refuses_a_gate_measured_against_another_version(admin_client):
    first = register()
    registry.promote(first.id)
    stale = register()  # gated against the linear ranking, but v1 is active now
    [(level, text)] = act(admin_client, "promote_selected", stale)
    assert level == messages.ERROR
    assert "measured against version id None" in text and "reranker:v1" in text
    assert statuses() == {"reranker:v1": "active", "reranker:v2": "candidate"}


def test_promote_refuses_an_active_or_retired_version(admin_client):
    first = register()
    registry.promote(first.id)
    [(level, text)] = act(admin_client, "promote_selected", first)
    assert (level, text) == (messages.ERROR, "reranker:v1 is already active.")
    second = register(against=first.id)
    registry.promote(second.id)
    [(level, text)] = act(admin_client, "promote_selected", first)
    assert (level, text) == (messages.ERROR, "reranker:v1 is retired, not a candidate.")
    assert statuses() == {"reranker:v1": "retired", "reranker:v2": "active"}


def test_promote_wants_exactly_one_version(admin_client):
    first, second = register(), register()
    assert act(admin_client, "promote_selected", first, second) == [
        (messages.ERROR, "Select exactly one version.")
    ]
    assert statuses() == {"reranker:v1": "candidate", "reranker:v2": "candidate"}


def test_rollback_restores_the_previous_version_then_the_linear_ranking(admin_client):
    first = register()
    registry.promote(first.id)
    second = register(against=first.id)
    registry.promote(second.id)

    # Any row of the kind selects the kind; the active version is what is rolled back.
    assert act(admin_client, "rollback_kind", first) == [
        (messages.SUCCESS, "Rolled back: serving reranker:v1.")
    ]
    assert statuses() == {"reranker:v1": "active", "reranker:v2": "retired"}
    first.refresh_from_db()
    assert first.retired_at is None

    assert act(admin_client, "rollback_kind", first, second) == [
        (messages.SUCCESS, "Rolled back: serving the linear ranking.")
    ]
    assert statuses() == {"reranker:v1": "retired", "reranker:v2": "retired"}
    assert registry.active("reranker") is None


def test_rollback_with_nothing_active_is_an_error(admin_client):
    candidate = register()
    assert act(admin_client, "rollback_kind", candidate) == [
        (messages.ERROR, "No active reranker version to roll back.")
    ]
    assert statuses() == {"reranker:v1": "candidate"}


def test_rollback_wants_versions_of_one_kind(admin_client):
    reranker = register()
    registry.promote(reranker.id)
    als = register(kind="als")
    assert act(admin_client, "rollback_kind", reranker, als) == [
        (messages.ERROR, "Select versions of one kind.")
    ]
    assert statuses() == {"reranker:v1": "active", "als:v1": "candidate"}


# --- the same registry from manage.py and the services --------------------------------------


def test_model_list_prints_each_version_with_its_gate(capsys):
    call_command("model_list")
    assert capsys.readouterr().out == "No model versions yet (train_reranker, train_als).\n"
    first = register()
    register(passed=False)
    registry.register(
        "als",
        b"\x00",
        trained_from=NOW - timedelta(days=7),
        trained_to=NOW,
        params={},
        metrics={},
        gate={},
    )
    registry.promote(first.id)
    call_command("model_list")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["als:v1", "candidate"],
        ["reranker:v2", "candidate"],
        ["reranker:v1", "active"],
    ]
    assert "gate -:" in lines[0] and "1 B  sha256 " in lines[0]
    assert "gate failed: ndcg@10 0.3 vs 0.4 (linear)" in lines[1]
    assert "gate passed: ndcg@10 0.5 vs 0.4 (linear)" in lines[2]
    assert f"sha256 {first.artifact_sha256[:12]}" in lines[2]
    call_command("model_list", "--kind", "reranker", "--limit", "1")
    [only] = capsys.readouterr().out.splitlines()
    assert only.split()[1] == "reranker:v2"


def test_model_rollback_with_nothing_active_fails_and_changes_nothing():
    register()
    with pytest.raises(CommandError, match="No active reranker version to roll back"):
        call_command("model_rollback", "reranker")
    assert statuses() == {"reranker:v1": "candidate"}


def test_the_registry_refuses_an_unknown_kind_and_a_missing_version():
    with pytest.raises(ValueError, match="unknown model kind 'ranker'"):
        registry.register(
            "ranker", b"x", trained_from=NOW, trained_to=NOW, params={}, metrics={}, gate={}
        )
    with pytest.raises(NotFound, match="No model version 999999"):
        registry.promote(999_999)
    assert not ModelVersion.objects.exists()
