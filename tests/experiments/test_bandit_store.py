"""Bandits: creation and its validation, the arm the feed gets (state from Redis, else the
latest snapshot, else none), rewards from the interaction log applied exactly once, and the
state restored into an empty Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from experience_app.models import ExperienceInteraction
from experiments_app import bandit_store, serving, tasks
from experiments_app.bandit_store import BanditDef, StoredState
from experiments_app.bandits import ThompsonBernoulli
from experiments_app.models import Bandit, BanditSnapshot, Decision
from experiments_app.services import decisions
from inbo import keys
from inbo import redis as inbo_redis
from inbo.errors import Conflict, InvalidInput
from tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

DEFAULT = ["continue_reading", "for_you", "because_you_read", "trending", "fresh"]
TRENDING_FIRST = ["trending", "for_you", "continue_reading", "because_you_read", "fresh"]
ARMS = {"default": DEFAULT, "trending_first": TRENDING_FIRST}
WINDOW = timedelta(minutes=30)


def create(key: str = "order", kind: str = "thompson", **params) -> Bandit:
    return decisions.bandit_create(key, kind=kind, arms=ARMS, params=params or None)


def favouring(bandit: Bandit, arm: str) -> dict:
    """A Thompson state that all but always plays ``arm``."""
    policy = ThompsonBernoulli(len(ARMS))
    best = bandit.arm_keys().index(arm)
    policy.alpha[best] = 10_000.0  # mean ~1 for the favourite, ~0 for the others:
    policy.beta[[i for i in range(len(ARMS)) if i != best]] = 10_000.0  # draws never cross
    return policy.to_dict()


def choose(key: str = "order", context: dict | None = None):
    return serving.provider.choose(key, 1, context or {}, timezone.now())


def decision(user, arm: str, at, *, kind: str = "bandit", key: str = "order", context=None):
    return Decision.objects.create(
        user=user,
        kind=kind,
        key=key,
        arm=arm,
        propensity=0.5,
        context=context or {},
        decided_at=at,
        request_id=uuid.uuid4(),
    )


def interact(user, item, at, *, kind: str = "click", section: str = "for_you") -> None:
    ExperienceInteraction.objects.create(
        user=user,
        item=item,
        interaction_type=kind,
        section=section,
        occurred_at=at,
        event_id=uuid.uuid4(),
    )


# --- bandits as data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "ucb1"}, "kind"),
        ({"arms": {"only": DEFAULT}}, "arms"),
        ({"arms": {f"a{i}": DEFAULT[i % 5 :] + DEFAULT[: i % 5] for i in range(9)}}, "arms"),
        ({"arms": {"a": DEFAULT, "b": ["for_you", "ads"]}}, "arms"),
        ({"arms": {"a": DEFAULT, "b": ["for_you", "for_you"]}}, "arms"),
        ({"arms": {"a": DEFAULT, "b": list(DEFAULT)}}, "arms"),
        ({"arms": {"A b": DEFAULT, "b": TRENDING_FIRST}}, "arms"),
        ({"arms": ["default", "trending"]}, "arms"),
        ({"kind": "epsilon_greedy", "params": {"epsilon": 1.5}}, "params"),
        ({"kind": "thompson", "params": {"epsilon": 0.1}}, "params"),
        ({"kind": "linucb", "params": {"alpha": "big"}}, "params"),
    ],
)
def test_invalid_bandits_are_refused(kwargs, field):
    kwargs = {"kind": "thompson", "arms": ARMS, **kwargs}
    with pytest.raises(InvalidInput) as caught:
        decisions.bandit_create("order", **kwargs)
    assert list(caught.value.details) == [field]
    assert not Bandit.objects.exists()


def test_a_bandit_starts_with_a_snapshot_of_its_prior(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bandit = create()
    snapshot = BanditSnapshot.objects.get(bandit=bandit)
    assert snapshot.decisions_applied == 0
    assert snapshot.state["alpha"] == [1.0, 1.0]
    stored = bandit_store.read_state(BanditDef.of(bandit))
    assert stored is not None and stored.snapshot == snapshot.pk
    with pytest.raises(Conflict):
        create()


def test_manage_py_bandit_create_list_show_pause():
    out = StringIO()
    call_command(
        "bandit",
        "create",
        "order",
        "--kind",
        "epsilon_greedy",
        "--epsilon",
        "0.2",
        "--arm",
        "default=" + ",".join(DEFAULT),
        "--arm",
        "trending_first=" + ",".join(TRENDING_FIRST),
        stdout=out,
    )
    assert Bandit.objects.get(key="order").params == {"epsilon": 0.2}
    call_command("bandit", "list", stdout=out)
    user = UserFactory()
    decision(user, "default", timezone.now())
    Decision.objects.update(reward=1.0)
    call_command("bandit", "show", "order", stdout=out)
    call_command("bandit", "pause", "order", stdout=out)
    text = out.getvalue()
    assert "Created epsilon_greedy bandit order with 2 arms." in text
    assert "arms=default,trending_first" in text
    assert "pulls=1" in text and "mean_reward=1.0000" in text
    assert "order is paused." in text
    with pytest.raises(CommandError, match="Unknown section"):
        call_command("bandit", "create", "x", "--arm", "a=for_you,ads", "--arm", "b=fresh")
    with pytest.raises(CommandError, match="No bandit"):
        call_command("bandit", "show", "nobody")


# --- choosing an arm ---------------------------------------------------------------------


def test_choose_plays_the_state_in_redis():
    bandit = create()
    stored = StoredState(bandit.pk, 10**9, 5, favouring(bandit, "trending_first"))
    assert bandit_store.write_state(bandit.key, stored)
    chosen = choose(context={"segment": "warm", "daypart": 1})
    assert chosen.kind == "bandit" and chosen.key == "order"
    assert chosen.arm == "trending_first"
    assert chosen.payload == {"order": TRENDING_FIRST}
    assert chosen.propensity == pytest.approx(1.0)
    assert chosen.context == {"segment": "warm", "daypart": 1}


def test_choose_without_redis_falls_back_to_the_snapshot_then_to_none(redis_state_server):
    bandit = create()
    BanditSnapshot.objects.create(
        bandit=bandit,
        state=favouring(bandit, "trending_first"),
        decisions_applied=3,
        taken_at=timezone.now(),
    )
    stored = StoredState(bandit.pk, 10**9, 5, favouring(bandit, "default"))
    bandit_store.write_state(bandit.key, stored)
    assert choose().arm == "default"  # Redis's copy
    redis_state_server.stop()
    assert choose().arm == "trending_first"  # the latest snapshot
    decisions.bandit_set_status("order", Bandit.Status.PAUSED)
    assert choose() is None  # paused: the default order
    assert choose("nobody") is None


def test_an_empty_redis_means_the_snapshot():
    bandit = create()
    BanditSnapshot.objects.create(
        bandit=bandit,
        state=favouring(bandit, "trending_first"),
        decisions_applied=3,
        taken_at=timezone.now(),
    )
    assert inbo_redis.state().get(keys.bandit_state("order")) is None
    assert choose().arm == "trending_first"


def test_a_copy_of_another_bandit_under_the_same_key_is_ignored():
    bandit = create()
    BanditSnapshot.objects.create(
        bandit=bandit,
        state=favouring(bandit, "trending_first"),
        decisions_applied=3,
        taken_at=timezone.now(),
    )
    bandit_store.write_state(
        "order", StoredState(bandit.pk + 1, 10**9, 5, favouring(bandit, "default"))
    )
    assert choose().arm == "trending_first"


def test_an_older_snapshot_never_overwrites_a_newer_copy():
    bandit = create()
    assert bandit_store.write_state("order", StoredState(bandit.pk, 10, 5, {"v": "new"}))
    assert not bandit_store.write_state("order", StoredState(bandit.pk, 9, 4, {"v": "old"}))
    assert bandit_store.read_state(BanditDef.of(bandit)).state == {"v": "new"}


def test_linucb_chooses_with_a_context_and_an_exact_propensity():
    create("ctx", kind="linucb", epsilon=0.2, alpha=0.5)
    chosen = choose("ctx", {"segment": "cold", "daypart": 3})
    assert chosen.arm in ARMS
    # Both arms tie under the prior: each is greedy half the time, plus epsilon / K.
    assert chosen.propensity == pytest.approx(0.2 / 2 + 0.8 / 2)
    assert list(bandit_store.features({"segment": "cold", "daypart": 3})) == [
        1,
        1,
        0,
        0,
        0,
        0,
        1,
    ]


# --- rewards and state -------------------------------------------------------------------


def test_rewards_come_from_home_engagement_in_the_window_and_apply_once(
    django_capture_on_commit_callbacks,
):
    bandit = create()
    now = timezone.now()
    at = now - timedelta(hours=2)
    item = ItemFactory()
    clicked, idle, elsewhere, late, recent = (UserFactory() for _ in range(5))
    decision(clicked, "trending_first", at)
    interact(clicked, item, at + timedelta(minutes=10))
    decision(idle, "trending_first", at)
    decision(elsewhere, "default", at)
    interact(elsewhere, item, at + timedelta(minutes=5), section="")  # not on home
    decision(late, "default", at)
    interact(late, item, at + WINDOW + timedelta(seconds=1), kind="read")
    pending = decision(recent, "default", now - timedelta(minutes=5))  # window still open

    with django_capture_on_commit_callbacks(execute=True):
        figures = decisions.update_bandits(now=now)
    assert figures.bandit_rewarded == 4 and figures.applied == 4 and figures.snapshots == 1
    rewards = dict(Decision.objects.values_list("user_id", "reward"))
    assert rewards == {
        clicked.pk: 1.0,
        idle.pk: 0.0,
        elsewhere.pk: 0.0,
        late.pk: 0.0,
        recent.pk: None,
    }
    latest = BanditSnapshot.objects.filter(bandit=bandit).order_by("-id").first()
    arms = bandit.arm_keys()
    assert latest.decisions_applied == 4
    assert latest.state["alpha"][arms.index("trending_first")] == 2.0  # prior 1 + one click
    assert latest.state["beta"][arms.index("trending_first")] == 2.0
    assert latest.state["beta"][arms.index("default")] == 3.0
    stored = bandit_store.read_state(BanditDef.of(bandit))
    assert stored.snapshot == latest.pk and stored.applied == 4

    # A second run (a redelivered task, a concurrent beat) applies nothing again.
    with django_capture_on_commit_callbacks(execute=True):
        again = decisions.update_bandits(now=now)
    assert again.bandit_rewarded == 0 and again.applied == 0
    assert BanditSnapshot.objects.filter(bandit=bandit).count() == 2
    pending.refresh_from_db()
    assert pending.reward is None

    # Later, the open window closes and only that decision is applied.
    with django_capture_on_commit_callbacks(execute=True):
        later = decisions.update_bandits(now=now + WINDOW)
    assert later.bandit_rewarded == 1
    assert BanditSnapshot.objects.filter(bandit=bandit).order_by("-id")[0].decisions_applied == 5


def test_exploration_is_rewarded_for_the_item_it_showed():
    now = timezone.now()
    at = now - timedelta(hours=1)
    shown, other = ItemFactory(), ItemFactory()
    hit, miss = UserFactory(), UserFactory()
    decision(hit, str(shown.pk), at, kind="explore", key="for_you")
    interact(hit, shown, at + timedelta(minutes=1), kind="read")
    decision(miss, str(shown.pk), at, kind="explore", key="for_you")
    interact(miss, other, at + timedelta(minutes=1))
    figures = decisions.update_bandits(now=now)
    assert figures.explore_rewarded == 2 and figures.snapshots == 0
    assert dict(Decision.objects.values_list("user_id", "reward")) == {hit.pk: 1.0, miss.pk: 0.0}


def test_linucb_state_takes_the_context_of_each_decision():
    bandit = create("ctx", kind="linucb")
    user = UserFactory()
    decision(
        user,
        "default",
        timezone.now() - timedelta(hours=1),
        key="ctx",
        context={"segment": "warm", "daypart": 0},
    )
    decisions.update_bandits()
    state = BanditSnapshot.objects.filter(bandit=bandit).order_by("-id")[0].state
    a = state["A"][bandit.arm_keys().index("default")]
    assert a[0][0] == 2.0 and a[2][2] == 2.0 and a[1][1] == 1.0  # bias, warm; cold untouched


def test_redis_down_still_rewards_and_snapshots_and_the_copy_comes_back(
    redis_state_server, django_capture_on_commit_callbacks
):
    bandit = create()
    user = UserFactory()
    decision(user, "default", timezone.now() - timedelta(hours=1))
    redis_state_server.stop()
    with django_capture_on_commit_callbacks(execute=True):
        figures = decisions.update_bandits()
    assert figures.bandit_rewarded == 1 and figures.snapshots == 1
    latest = BanditSnapshot.objects.filter(bandit=bandit).order_by("-id")[0]
    assert latest.decisions_applied == 1
    assert choose() is not None  # the feed plays the snapshot

    redis_state_server.start()  # back, and empty
    inbo_redis.reset_clients()
    figures = decisions.update_bandits()
    assert figures.restored == 1
    stored = bandit_store.read_state(BanditDef.of(bandit))
    assert stored.snapshot == latest.pk and stored.state == latest.state


def test_the_beat_task_runs_the_update():
    create()
    decision(UserFactory(), "default", timezone.now() - timedelta(hours=1))
    figures = tasks.update_bandits()
    assert figures["bandit_rewarded"] == 1 and figures["applied"] == 1


def test_decisions_of_a_deleted_bandit_are_still_rewarded():
    decision(UserFactory(), "default", timezone.now() - timedelta(hours=1), key="gone")
    figures = decisions.update_bandits()
    assert figures.bandit_rewarded == 1 and figures.snapshots == 0
    assert Decision.objects.get().reward == 0.0


def test_the_admin_creates_bandits_through_the_service_and_shows_the_log(admin_client):
    url = "/admin/experiments_app/bandit/"
    form = {
        "key": "from-admin",
        "kind": "thompson",
        "arms": '{"default": ["for_you", "fresh"], "fresh_first": ["fresh", "for_you"]}',
        "params": "{}",
        "status": "active",
    }
    bad = admin_client.post(f"{url}add/", {**form, "arms": '{"only": ["for_you"]}'})
    assert bad.status_code == 200 and "2 to 8 arms" in bad.content.decode()
    bad = admin_client.post(f"{url}add/", {**form, "key": "Upper"})
    assert bad.status_code == 200 and "not a valid key" in bad.content.decode()
    assert admin_client.post(f"{url}add/", form).status_code == 302
    bandit = Bandit.objects.get(key="from-admin")
    assert BanditSnapshot.objects.filter(bandit=bandit).count() == 1  # the prior
    page = admin_client.get(f"{url}{bandit.pk}/change/").content.decode()
    assert 'name="arms"' not in page  # arms are read-only once created
    decision(UserFactory(), "default", timezone.now(), key="from-admin")
    for model in ("bandit", "banditsnapshot", "decision"):
        assert admin_client.get(f"/admin/experiments_app/{model}/").status_code == 200
    assert (
        admin_client.get("/admin/experiments_app/decision/?kind__exact=bandit").status_code == 200
    )
    assert admin_client.get("/admin/experiments_app/decision/add/").status_code == 403


def test_a_crash_before_the_snapshot_applies_nothing_and_the_rerun_applies_once(monkeypatch):
    bandit = create()
    decision(UserFactory(), "default", timezone.now() - timedelta(hours=1))
    create_snapshot = BanditSnapshot.objects.create

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(BanditSnapshot.objects, "create", crash)
    with pytest.raises(RuntimeError):
        decisions.update_bandits()
    assert Decision.objects.get().reward is None  # the marks rolled back with the state

    monkeypatch.setattr(BanditSnapshot.objects, "create", create_snapshot)
    assert decisions.update_bandits().applied == 1
    assert decisions.update_bandits().applied == 0
    latest = BanditSnapshot.objects.filter(bandit=bandit).order_by("-id")[0]
    assert latest.decisions_applied == 1
    assert sum(latest.state["alpha"]) + sum(latest.state["beta"]) == 5.0  # prior 4 + one
