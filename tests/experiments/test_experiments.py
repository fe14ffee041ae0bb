"""Experiments as data: validation, the draft -> running -> stopped lifecycle, frozen
allocation, the admin (inline validation, read-only when running, start/stop actions) and
``manage.py experiment``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.core.management.base import CommandError

from experiments_app.models import Experiment, Variant
from experiments_app.services import lifecycle
from experiments_app.services.decisions import bandit_create
from experiments_app.services.validation import VariantSpec
from inbo.errors import Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/experiments_app/experiment/"


def draft(key: str = "exp", *, layer: str = "feed", traffic: int = 100, **kw) -> Experiment:
    variants = kw.pop("variants", [VariantSpec("control", 50, True), VariantSpec("treat", 50)])
    return lifecycle.experiment_create(
        key=key,
        hypothesis="Reranker v3 lifts home CTR.",
        layer_key=layer,
        variants=variants,
        traffic_share=traffic,
        **kw,
    )


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([VariantSpec("a", 60, True), VariantSpec("b", 50)], "sum to 100%; they sum to 110%"),
        ([VariantSpec("a", 50, True), VariantSpec("b", 50, True)], "found 2"),
        ([VariantSpec("a", 50), VariantSpec("b", 50)], "found 0"),
        ([VariantSpec("a", 100, True)], "at least two variants"),
        ([VariantSpec("a", 50, True), VariantSpec("a", 50)], "distinct"),
        ([VariantSpec("A b", 50, True), VariantSpec("b", 50)], "not a valid key"),
        ([VariantSpec("a", 150, True), VariantSpec("b", -50)], "0 to 100"),
    ],
)
def test_invalid_variants_are_refused(variants, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        draft(variants=variants)
    assert caught.value.details == {"variants": [caught.value.message]}
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"targeting": {"country": "fr"}}, "targeting"),
        ({"targeting": {"new_users_days": "7"}}, "targeting"),
        ({"targeting": {"platform": "tv"}}, "targeting"),
        ({"primary_metric": "latency_p95"}, "primary_metric"),
        ({"guardrails": ["dismiss_rate", "revenue"]}, "guardrails"),
        ({"traffic": 0}, "traffic_share"),
        ({"traffic": 101}, "traffic_share"),
    ],
)
def test_invalid_targeting_metrics_and_traffic_are_refused(kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        draft(**kwargs)
    assert list(caught.value.details) == [field]


def test_a_valid_draft_keeps_its_variants_targeting_and_metrics():
    # A variant's config may name only a bandit that exists (tests/experiments/test_serving.py).
    bandit_create(
        "thompson",
        kind="thompson",
        arms={"default": ["for_you", "trending"], "trending_first": ["trending", "for_you"]},
    )
    experiment = draft(
        targeting={"new_users_days": 14, "segment": "power", "platform": "web"},
        primary_metric="reads_per_user",
        guardrails=["dismiss_rate", "latency_p95"],
        variants=[
            VariantSpec("control", 34, True),
            VariantSpec("v3", 33, config={"reranker": "reranker:v3"}),
            VariantSpec("bandit", 33, config={"bandit": "thompson"}),
        ],
    )
    assert experiment.status == "draft" and experiment.layer.key == "feed"
    assert len(experiment.salt) == 16 and experiment.layer_slot_start is None
    assert [(v.key, v.weight, v.is_control) for v in experiment.variants.all()] == [
        ("control", 34, True),
        ("v3", 33, False),
        ("bandit", 33, False),
    ]
    with pytest.raises(Conflict, match="exists already"):
        draft()


def test_lifecycle_runs_draft_to_running_to_stopped_only():
    experiment = lifecycle.experiment_start(draft())
    assert experiment.status == "running" and experiment.started_at is not None
    with pytest.raises(Conflict, match="only a draft can start"):
        lifecycle.experiment_start(experiment)
    stopped = lifecycle.experiment_stop(experiment)
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    assert (stopped.layer_slot_start, stopped.layer_slot_end) == (0, 10_000)  # kept
    with pytest.raises(Conflict, match="stopped; only a draft can start"):
        lifecycle.experiment_start(stopped)
    with pytest.raises(Conflict, match="only a running one stops"):
        lifecycle.experiment_stop(stopped)
    with pytest.raises(Conflict, match="only a running one stops"):
        lifecycle.experiment_stop(draft("other"))
    with pytest.raises(NotFound):
        lifecycle.experiment_get("nope")


def test_a_started_experiments_allocation_cannot_change():
    experiment = draft(traffic=30)
    lifecycle.experiment_update(experiment, traffic_share=40, salt="abc", layer="ranking")
    lifecycle.experiment_set_variants(
        experiment, [VariantSpec("control", 20, True), VariantSpec("treat", 80)]
    )
    lifecycle.experiment_start(experiment)
    for change in ({"traffic_share": 50}, {"salt": "x"}, {"layer": "feed"}, {"targeting": {}}):
        with pytest.raises(Conflict, match=r"running: its .* cannot change"):
            lifecycle.experiment_update(experiment, **change)
    with pytest.raises(Conflict, match="variants and weights cannot change"):
        lifecycle.experiment_set_variants(
            experiment, [VariantSpec("control", 50, True), VariantSpec("treat", 50)]
        )
    # The hypothesis and the metrics may still be clarified.
    lifecycle.experiment_update(experiment, hypothesis="Better said.", guardrails=["latency_p95"])
    lifecycle.experiment_stop(experiment)
    with pytest.raises(Conflict, match="stopped: its traffic_share cannot change"):
        lifecycle.experiment_update(experiment, traffic_share=10)
    experiment.refresh_from_db()
    assert (experiment.traffic_share, experiment.salt, experiment.layer.key) == (
        40,
        "abc",
        "ranking",
    )
    assert [v.weight for v in experiment.variants.all()] == [20, 80]


def test_start_is_refused_when_the_layer_is_full():
    lifecycle.experiment_start(draft("big", traffic=70))
    with pytest.raises(Conflict, match="no free 40%"):
        lifecycle.experiment_start(draft("late", traffic=40))
    assert Experiment.objects.get(key="late").status == "draft"
    lifecycle.experiment_start(draft("elsewhere", layer="ui", traffic=40))
    lifecycle.experiment_start(draft("fits", traffic=30))


# --- admin -------------------------------------------------------------------------------


def _form(**overrides) -> dict:
    data = {
        "key": "from-admin",
        "hypothesis": "h",
        "layer": "",
        "salt": "s1",
        "traffic_share": "100",
        "targeting": "{}",
        "primary_metric": "home_ctr",
        "guardrails": '["dismiss_rate"]',
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-key": "control",
        "variants-0-weight": "50",
        "variants-0-is_control": "on",
        "variants-0-config": "{}",
        "variants-1-key": "treat",
        "variants-1-weight": "50",
        "variants-1-config": '{"reranker": "reranker:v3"}',
    }
    data.update(overrides)
    return data


def test_the_admin_validates_a_new_experiment_and_its_variants(admin_client):
    layer = lifecycle.layer_ensure("feed")
    bad = admin_client.post(
        f"{CHANGELIST}add/", _form(layer=layer.id, **{"variants-1-weight": "60"})
    )
    assert bad.status_code == 200
    assert "Variant weights must sum to 100%; they sum to 110%." in bad.content.decode()
    bad = admin_client.post(
        f"{CHANGELIST}add/", _form(layer=layer.id, targeting='{"country": "fr"}')
    )
    assert "Unknown targeting rule country" in bad.content.decode()
    assert not Experiment.objects.exists()

    ok = admin_client.post(f"{CHANGELIST}add/", _form(layer=layer.id))
    assert ok.status_code == 302
    experiment = Experiment.objects.get(key="from-admin")
    assert experiment.status == "draft"
    treat = experiment.variants.get(key="treat")
    assert treat.config == {"reranker": "reranker:v3"} and not treat.is_control


def _act(client, action: str, *experiments: Experiment) -> list[tuple[int, str]]:
    response = client.post(
        CHANGELIST, {"action": action, "_selected_action": [e.id for e in experiments]}
    )
    assert response.status_code == 302
    left = [(m.level, m.message) for m in get_messages(response.wsgi_request)]
    client.cookies.pop("messages", None)
    return left


def test_admin_actions_start_and_stop_through_the_services(admin_client):
    experiment = draft()
    assert _act(admin_client, "start_selected", experiment) == [
        (messages.SUCCESS, "exp is running.")
    ]
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.layer_slot_end == 10_000
    left = _act(admin_client, "start_selected", experiment)
    assert left[0][0] == messages.ERROR and "only a draft can start" in left[0][1]
    assert _act(admin_client, "stop_selected", experiment) == [
        (messages.SUCCESS, "exp is stopped.")
    ]
    experiment.refresh_from_db()
    assert experiment.status == "stopped"


def test_a_running_experiments_allocation_is_read_only_in_the_admin(admin_client):
    experiment = lifecycle.experiment_start(draft())
    page = admin_client.get(f"{CHANGELIST}{experiment.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="traffic_share"' not in html and 'name="salt"' not in html
    assert 'name="variants-0-weight"' not in html
    assert 'name="hypothesis"' in html
    posted = admin_client.post(
        f"{CHANGELIST}{experiment.id}/change/",
        {
            "hypothesis": "clarified",
            "primary_metric": "home_ctr",
            "guardrails": "[]",
            "traffic_share": "10",
            "salt": "changed",
            "variants-TOTAL_FORMS": "2",
            "variants-INITIAL_FORMS": "2",
            "variants-MIN_NUM_FORMS": "2",
            "variants-MAX_NUM_FORMS": "1000",
        },
    )
    assert posted.status_code == 302
    experiment.refresh_from_db()
    assert experiment.hypothesis == "clarified"
    assert experiment.traffic_share == 100 and experiment.salt != "changed"
    assert sorted(Variant.objects.values_list("weight", flat=True)) == [50, 50]
    assert admin_client.get("/admin/experiments_app/exposure/").status_code == 200
    assert admin_client.get("/admin/experiments_app/exposure/add/").status_code == 403
    assert admin_client.get("/admin/experiments_app/layer/").status_code == 200


# --- manage.py experiment ----------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("experiment", *args, stdout=out)
    return out.getvalue()


def test_the_command_creates_starts_lists_and_stops():
    created = run(
        "create", "rerank-v3", "--layer", "ranking", "--hypothesis", "v3 lifts CTR",
        "--variant", "control:50", "--variant", "treatment:50",
        "--config", 'treatment={"reranker": "reranker:v3"}',
        "--primary", "home_ctr", "--guardrail", "dismiss_rate", "--guardrail", "latency_p95",
        "--traffic", "20", "--target", '{"platform": "web"}',
    )  # fmt: skip
    assert "rerank-v3 created as a draft in layer ranking: control 50%, treatment 50%." in created
    experiment = lifecycle.experiment_get("rerank-v3")
    assert experiment.guardrails == ["dismiss_rate", "latency_p95"]
    assert experiment.targeting == {"platform": "web"} and experiment.traffic_share == 20
    control = experiment.variants.get(is_control=True)
    assert control.key == "control"
    assert experiment.variants.get(key="treatment").config == {"reranker": "reranker:v3"}

    assert "buckets [0, 2000)" in run("start", "rerank-v3")
    listed = run("list")
    assert (
        "rerank-v3\tranking\trunning\t20%\t[0,2000)\thome_ctr\tcontrol*:50 treatment:50" in listed
    )
    assert "rerank-v3 is stopped." in run("stop", "rerank-v3", "--reason", "enough data")
    assert Experiment.objects.get(key="rerank-v3").stop_reason == "enough data"
    with pytest.raises(CommandError, match="only a draft can start"):
        run("start", "rerank-v3")


def test_the_command_reports_invalid_experiments():
    with pytest.raises(CommandError, match="sum to 100%; they sum to 90%"):
        run("create", "x", "--layer", "l", "--hypothesis", "h",
            "--variant", "a:45", "--variant", "b:45")  # fmt: skip
    with pytest.raises(CommandError, match="--control and --config must name variants"):
        run("create", "x", "--layer", "l", "--hypothesis", "h",
            "--variant", "a:50", "--variant", "b:50", "--control", "c")  # fmt: skip
    with pytest.raises(CommandError, match="No experiment 'ghost'"):
        run("stop", "ghost")
    assert not Experiment.objects.exists()


def test_only_drafts_can_be_deleted_in_the_admin(admin_client):
    running = lifecycle.experiment_start(draft())
    assert admin_client.get(f"{CHANGELIST}{running.id}/delete/").status_code == 403
    other = lifecycle.experiment_create(
        key="other",
        hypothesis="h",
        layer_key="another",
        variants=[VariantSpec("a", 50, True), VariantSpec("b", 50)],
    )
    selected = {"action": "delete_selected", "_selected_action": [running.id, other.id]}
    # Django refuses the whole bulk delete when one selected object may not be deleted.
    assert admin_client.post(CHANGELIST, {**selected, "post": "yes"}).status_code == 403
    assert Experiment.objects.count() == 2
    admin_client.post(CHANGELIST, {**selected, "_selected_action": [other.id], "post": "yes"})
    assert list(Experiment.objects.values_list("key", flat=True)) == [running.key]
