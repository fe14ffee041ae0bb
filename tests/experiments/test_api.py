"""The staff experiments API: the lifecycle over HTTP, every refusal in the error envelope,
staff-only access, pagination, exposure counts and the schema of its operations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from experiments_app.api.serializers import KEY_PATTERN
from experiments_app.models import Experiment, Layer, Variant
from experiments_app.services import lifecycle, validation
from experiments_app.services.exposures import log_exposure
from experiments_app.services.validation import VariantSpec
from tests.factories import UserFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/api/v1/experiments/"
LAYERS = "/api/v1/experiments/layers/"
AT = datetime(2024, 5, 2, 9, tzinfo=UTC)


def url(key: str, action: str = "") -> str:
    return f"{EXPERIMENTS}{key}/" + (f"{action}/" if action else "")


def body(key: str = "fresh-first", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": key,
        "hypothesis": "Fresh above For you lifts home CTR.",
        "layer": "home",
        "traffic_share": 20,
        "targeting": {"platform": "web"},
        "primary_metric": "home_ctr",
        "guardrails": ["dismiss_rate", "latency_p95"],
        "variants": [
            {"key": "control", "weight": 50, "is_control": True},
            {"key": "treat", "weight": 50, "config": {}},
        ],
    }
    data.update(changes)
    return data


@pytest.fixture
def staff_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


@pytest.fixture
def layer() -> Layer:
    return lifecycle.layer_ensure("home")


def draft(key: str = "exp", traffic: int = 100) -> Experiment:
    return lifecycle.experiment_create(
        key=key,
        hypothesis="h",
        layer_key="home",
        variants=[VariantSpec("control", 50, True), VariantSpec("treat", 50)],
        traffic_share=traffic,
    )


# --- The lifecycle ------------------------------------------------------------------------


def test_the_whole_lifecycle_over_http(staff_client, layer):
    created = staff_client.post(EXPERIMENTS, body())
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["status"] == "draft"
    assert data["layer"] == "home"
    assert data["targeting"] == {"platform": "web"}
    assert [(v["key"], v["weight"], v["is_control"], v["exposures"]) for v in data["variants"]] == [
        ("control", 50, True, 0),
        ("treat", 50, False, 0),
    ]
    assert data["exposures"] == 0 and data["layer_slot_start"] is None

    started = staff_client.post(url("fresh-first", "start"))
    assert started.status_code == 200, started.content
    assert started.json()["status"] == "running"
    assert (started.json()["layer_slot_start"], started.json()["layer_slot_end"]) == (0, 2000)
    assert started.json()["started_at"] is not None

    assert_error(staff_client.post(url("fresh-first", "start")), 409, "conflict")

    stopped = staff_client.post(url("fresh-first", "stop"), {"reason": "Two weeks done."})
    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["stop_reason"] == "Two weeks done."
    # The slot stays on record after the stop.
    assert stopped.json()["layer_slot_end"] == 2000

    error = assert_error(staff_client.post(url("fresh-first", "start")), 409, "conflict")
    assert "never runs again" in error["message"]
    assert_error(staff_client.post(url("fresh-first", "stop")), 409, "conflict")
    assert Experiment.objects.get().status == Experiment.Status.STOPPED


def test_stop_takes_no_body(staff_client, layer):
    draft()
    staff_client.post(url("exp", "start"))

    response = staff_client.post(url("exp", "stop"))

    assert response.status_code == 200, response.content
    assert response.json()["stop_reason"] == ""


def test_a_full_layer_refuses_the_start_and_says_why(staff_client, layer):
    draft("big", traffic=90)
    draft("small", traffic=20)
    assert staff_client.post(url("big", "start")).status_code == 200

    error = assert_error(staff_client.post(url("small", "start")), 409, "conflict")

    assert "no free 20%" in error["message"]
    assert Experiment.objects.get(key="small").status == Experiment.Status.DRAFT


def test_the_detail_counts_exposures_per_variant_in_one_query(
    staff_client, layer, django_assert_num_queries
):
    experiment = draft()
    lifecycle.experiment_start(experiment)
    control, treat = Variant.objects.filter(experiment=experiment).order_by("id")
    users = UserFactory.create_batch(3)
    log_exposure(experiment, control, users[0].pk, AT)
    log_exposure(experiment, treat, users[1].pk, AT)
    log_exposure(experiment, treat, users[2].pk, AT)

    # The experiment with its layer, its variants, the exposure counts.
    with django_assert_num_queries(3):
        response = staff_client.get(url("exp"))

    assert response.status_code == 200
    assert {v["key"]: v["exposures"] for v in response.json()["variants"]} == {
        "control": 1,
        "treat": 2,
    }
    assert response.json()["exposures"] == 3


def test_patch_edits_the_hypothesis_and_metrics_of_a_running_experiment(staff_client, layer):
    lifecycle.experiment_start(draft())

    response = staff_client.patch(
        url("exp"),
        {
            "hypothesis": " Sharper: +2% CTR.\n",
            "primary_metric": "reads_per_user",
            "guardrails": [],
        },
    )

    assert response.status_code == 200, response.content
    assert response.json()["hypothesis"] == "Sharper: +2% CTR."
    assert response.json()["primary_metric"] == "reads_per_user"
    assert response.json()["guardrails"] == []


@pytest.mark.parametrize(
    "changes",
    [{"traffic_share": 50}, {"targeting": {"platform": "ios"}}, {"layer": "home"}],
)
def test_patching_the_allocation_of_a_running_experiment_is_a_409(staff_client, layer, changes):
    lifecycle.experiment_start(draft())

    error = assert_error(staff_client.patch(url("exp"), changes), 409, "conflict")

    assert "cannot change" in error["message"]
    assert Experiment.objects.get().traffic_share == 100


def test_patch_moves_a_draft_to_another_existing_layer(staff_client, layer):
    draft()
    lifecycle.layer_ensure("search")

    response = staff_client.patch(url("exp"), {"layer": "search", "traffic_share": 30})

    assert response.status_code == 200, response.content
    assert (response.json()["layer"], response.json()["traffic_share"]) == ("search", 30)


def test_put_variants_replaces_a_drafts_variants(staff_client, layer):
    draft()
    variants = [
        {"key": "a", "weight": 34, "is_control": True},
        {"key": "b", "weight": 33},
        {"key": "c", "weight": 33, "config": {"section_order": ["fresh", "for_you"]}},
    ]

    response = staff_client.put(url("exp", "variants"), {"variants": variants}, format="json")

    assert response.status_code == 200, response.content
    assert [v["key"] for v in response.json()["variants"]] == ["a", "b", "c"]
    assert response.json()["variants"][2]["config"] == {"section_order": ["fresh", "for_you"]}


def test_put_variants_of_a_running_experiment_is_a_409(staff_client, layer):
    lifecycle.experiment_start(draft())
    variants = [{"key": "a", "weight": 50, "is_control": True}, {"key": "b", "weight": 50}]

    assert_error(staff_client.put(url("exp", "variants"), {"variants": variants}), 409, "conflict")
    assert sorted(Variant.objects.values_list("key", flat=True)) == ["control", "treat"]


# --- Refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        (
            {
                "variants": [
                    {"key": "a", "weight": 60, "is_control": True},
                    {"key": "b", "weight": 30},
                ]
            },
            "variants",
            "they sum to 90%",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 50, "is_control": True},
                    {"key": "b", "weight": 50, "is_control": True},
                ]
            },
            "variants",
            "found 2",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 50, "is_control": True},
                    {"key": "a", "weight": 50},
                ]
            },
            "variants",
            "distinct",
        ),
        ({"targeting": {"country": "fr"}}, "targeting", "Unknown targeting rule"),
        ({"targeting": {"new_users_days": 0}}, "targeting", "new_users_days"),
        ({"targeting": {"segment": "heavy\n"}}, "targeting", "segment"),
        ({"targeting": {"segment": "heavy"}}, "targeting", "one of new, casual"),
        ({"targeting": ["web"]}, "targeting", "object"),
        ({"primary_metric": "revenue"}, "primary_metric", "valid choice"),
        ({"primary_metric": "latency_p95"}, "primary_metric", "valid choice"),
        ({"guardrails": ["revenue"]}, "guardrails", "valid choice"),
        ({"guardrails": ["dismiss_rate", "dismiss_rate"]}, "guardrails", "twice"),
        ({"layer": "nowhere"}, "layer", "No layer 'nowhere'"),
        ({"key": "Fresh First"}, "key", "Lowercase"),
        ({"key": "fresh\n"}, "key", "Lowercase"),
        ({"key": "layers"}, "key", "reserved"),
        ({"key": "x" * 65}, "key", "64"),
        ({"hypothesis": "   "}, "hypothesis", "blank"),
        ({"hypothesis": "x" * 2001}, "hypothesis", "2000"),
        ({"traffic_share": 0}, "traffic_share", "greater than or equal to 1"),
        ({"traffic_share": "20"}, "traffic_share", "JSON integer"),
        ({"traffic_share": 20.0}, "traffic_share", "JSON integer"),
    ],
)
def test_invalid_experiments_are_a_400_naming_the_field(staff_client, layer, changes, field, words):
    error = assert_error(staff_client.post(EXPERIMENTS, body(**changes)), 400, "invalid", [field])

    assert words in str(error["details"][field]), error
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    "variant",
    [
        {"key": "b", "weight": "50"},
        {"key": "b", "weight": 50, "is_control": "false"},
        {"key": "b", "weight": 50, "is_control": 0},
        {"key": "b", "weight": 101},
        {"key": "b", "weight": 50, "config": []},
        {"key": "b", "weight": 50, "config": {"note": "nul\u0000"}},
        {"key": "b", "weight": 50, "config": {"section_order": ["astrology"]}},
        {"key": "b", "weight": 50, "config": {"unknown": 1}},
        {"key": "b", "weight": 50, "config": {"explore": {"pool": float("inf")}}},
        {"key": "b", "weight": 50, "config": {"weights": {"ctr": "x" * 5000}}},
    ],
)
def test_bad_variants_are_a_400_on_variants(staff_client, layer, variant):
    variants = [{"key": "a", "weight": 50, "is_control": True}, variant]
    # Sent as text: the test client's encoder would refuse 1e400 (infinity once parsed).
    raw = json.dumps(body(variants=variants)).replace('"pool": Infinity', '"pool": 1e400')

    response = staff_client.post(EXPERIMENTS, raw, content_type="application/json")

    error = assert_error(response, 400, "invalid")
    # "variants", or a path in it ("variants.b.config.section_order").
    assert error["details"]
    assert all(name.split(".")[0] == "variants" for name in error["details"]), error


@pytest.mark.parametrize("count", [1, 9])
def test_two_to_eight_variants(staff_client, layer, count):
    variants = [{"key": f"v{i}", "weight": 0, "is_control": i == 0} for i in range(count)]

    error = assert_error(
        staff_client.post(EXPERIMENTS, body(variants=variants)), 400, "invalid", ["variants"]
    )

    assert ("at least 2" if count == 1 else "no more than 8") in str(error["details"])


def test_an_existing_key_is_a_409(staff_client, layer):
    draft("fresh-first")

    assert_error(staff_client.post(EXPERIMENTS, body()), 409, "conflict")


def test_bodies_that_are_not_objects_are_a_400(staff_client, layer):
    assert_error(staff_client.post(EXPERIMENTS, [1, 2], format="json"), 400, "invalid")
    assert_error(staff_client.post(EXPERIMENTS, {}), 400, "invalid", ["key", "variants"])


def test_a_deeply_nested_config_is_refused_before_parsing(staff_client, layer):
    nested: Any = {}
    for _ in range(40):
        nested = {"n": nested}
    variants = [
        {"key": "a", "weight": 50, "is_control": True},
        {"key": "b", "weight": 50, "config": nested},
    ]

    assert_error(staff_client.post(EXPERIMENTS, body(variants=variants)), 400, "nesting_too_deep")


def test_patch_refuses_an_unknown_layer_and_bad_values(staff_client, layer):
    draft()

    assert_error(staff_client.patch(url("exp"), {"layer": "nowhere"}), 400, "invalid", ["layer"])
    assert_error(
        staff_client.patch(url("exp"), {"primary_metric": "revenue"}),
        400,
        "invalid",
        ["primary_metric"],
    )
    assert_error(staff_client.patch(url("exp"), {"hypothesis": ""}), 400, "invalid", ["hypothesis"])
    assert not Layer.objects.filter(key="nowhere").exists()


def test_a_stop_reason_is_bounded_and_cleaned(staff_client, layer):
    lifecycle.experiment_start(draft())

    assert_error(
        staff_client.post(url("exp", "stop"), {"reason": "x" * 301}), 400, "invalid", ["reason"]
    )
    response = staff_client.post(url("exp", "stop"), {"reason": "done\u0000"})
    assert response.status_code == 200
    assert response.json()["stop_reason"] == "done"


@pytest.mark.parametrize(
    ("method", "action", "data"),
    [
        ("get", "", None),
        ("patch", "", {"hypothesis": "h"}),
        ("put", "variants", {"variants": []}),
        ("post", "start", None),
        ("post", "stop", None),
    ],
)
def test_an_unknown_key_is_a_404(staff_client, method, action, data):
    response = getattr(staff_client, method)(url("nope", action), data, format="json")

    assert_error(response, 404, "not_found")


# --- Access -------------------------------------------------------------------------------

OPERATIONS = [
    ("get", EXPERIMENTS),
    ("post", EXPERIMENTS),
    ("get", url("exp")),
    ("patch", url("exp")),
    ("put", url("exp", "variants")),
    ("post", url("exp", "start")),
    ("post", url("exp", "stop")),
    ("get", LAYERS),
    ("post", LAYERS),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_experiments_are_for_staff_only(api_client, auth_client, layer, method, path):
    draft()

    assert_error(getattr(api_client, method)(path, {}, format="json"), 401, "not_authenticated")
    assert_error(getattr(auth_client, method)(path, {}, format="json"), 403, "permission_denied")
    assert Experiment.objects.get().status == Experiment.Status.DRAFT


def test_staff_read_the_list_and_the_detail(staff_client, layer):
    draft()

    assert staff_client.get(EXPERIMENTS).status_code == 200
    assert staff_client.get(url("exp")).status_code == 200
    assert staff_client.get(LAYERS).status_code == 200


# --- Lists --------------------------------------------------------------------------------


def test_the_list_pages_newest_first_in_constant_queries(
    staff_client, layer, django_assert_num_queries
):
    for i in range(5):
        draft(f"e{i}")

    with django_assert_num_queries(3):  # count, page, variants
        first = staff_client.get(EXPERIMENTS, {"page_size": 2})
    second = staff_client.get(EXPERIMENTS, {"page_size": 2, "page": 3})
    past = staff_client.get(EXPERIMENTS, {"page_size": 2, "page": 4})

    assert first.json()["count"] == 5
    assert [e["key"] for e in first.json()["results"]] == ["e4", "e3"]
    assert all(len(e["variants"]) == 2 for e in first.json()["results"])
    assert "page=2" in first.json()["next"]
    assert [e["key"] for e in second.json()["results"]] == ["e0"]
    assert past.status_code == 200 and past.json()["results"] == []


def test_the_list_filters_by_status(staff_client, layer):
    draft("a")
    lifecycle.experiment_start(draft("b", traffic=10))

    running = staff_client.get(EXPERIMENTS, {"status": "running"}).json()
    drafts = staff_client.get(EXPERIMENTS, {"status": "draft"}).json()

    assert [e["key"] for e in running["results"]] == ["b"]
    assert [e["key"] for e in drafts["results"]] == ["a"]


@pytest.mark.parametrize(
    "query", ["status=paused", "status=", "page_size=0", "page_size=101", "page=abc"]
)
def test_bad_list_parameters_are_a_400_naming_them(staff_client, query):
    name = query.split("=")[0]

    assert_error(staff_client.get(f"{EXPERIMENTS}?{query}"), 400, "invalid", [name])


def test_layers_are_created_once_and_listed_with_their_running_experiments(staff_client, layer):
    lifecycle.experiment_start(draft())

    created = staff_client.post(LAYERS, {"key": "search", "description": "Search ranking."})
    again = staff_client.post(LAYERS, {"key": "search", "description": "Other words."})
    listed = staff_client.get(LAYERS).json()

    assert created.status_code == 201, created.content
    assert again.status_code == 200
    assert again.json()["description"] == "Search ranking."
    assert listed["count"] == 2
    assert [(r["key"], r["running_experiments"]) for r in listed["results"]] == [
        ("home", 1),
        ("search", 0),
    ]


@pytest.mark.parametrize("key", ["Home", "home page", "home\n", "", 7])
def test_a_bad_layer_key_is_a_400(staff_client, key):
    assert_error(staff_client.post(LAYERS, {"key": key}), 400, "invalid", ["key"])
    assert not Layer.objects.exists()


# --- Schema -------------------------------------------------------------------------------


def test_the_schema_states_the_services_key_rule():
    assert f"^{validation._SLUG.pattern}$" == KEY_PATTERN


def test_every_experiments_operation_is_tagged_and_staff_only(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    operations = {
        (method, path): operation
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/experiments/") and not path.endswith("/report/")
        for method, operation in item.items()
    }

    assert len(operations) == len(OPERATIONS)
    for operation in operations.values():
        assert operation["tags"] == ["experiments"]
        assert {"401", "403"} <= set(operation["responses"])


def test_the_documented_create_example_is_accepted(staff_client, layer):
    from inbo.api.examples import EXAMPLES

    request = next(e for e in EXAMPLES["experiments_create"] if e.request_only)

    response = staff_client.post(EXPERIMENTS, request.value, format="json")

    assert response.status_code == 201, response.content
    assert staff_client.post(url("fresh-first", "start")).status_code == 200


def test_a_create_racing_another_with_the_same_key_is_a_409(staff_client, layer, monkeypatch):
    draft("fresh-first")
    # The other create commits between this one's check and its insert.
    queryset = type(Experiment.objects.none())
    exists = queryset.exists
    monkeypatch.setattr(
        queryset, "exists", lambda self: False if self.model is Experiment else exists(self)
    )

    assert_error(staff_client.post(EXPERIMENTS, body()), 409, "conflict")
    assert Experiment.objects.filter(key="fresh-first").count() == 1
