"""Schemathesis against the live test server: every operation, every check (issue 9, point 21).

The schema is the one the server publishes (GET /api/schema/). Schemathesis runs in-process
as its command line would (``schemathesis.engine``: examples, coverage and fuzzing phases in
positive and negative modes, and stateful sequences for the reader) with all its checks: no
server error, status codes, content types and headers as documented, responses valid against
their schemas, invalid input rejected, valid input accepted, authentication not ignored, a
deleted resource gone. Four identities take turns:

* anonymous: every operation without credentials;
* a reader with a token (and subscriptions, saves, progress and interests, so that lists and
  detail pages answer with real rows): every operation except the two that revoke tokens
  (staff-only ones answer 403);
* a staff member: the staff-only operations (search analytics, the experiments and the business
  rules APIs);
* a leaver, signed in again before each request: the logout operations, which revoke it.

Path parameters and a few body fields (item ids, provider slugs, search ids, experiment keys,
rule ids and the provider, target and item ids a rule names) are sometimes swapped for real
ones, so that generated requests reach real rows and not only 404s. A
schema-valid request that the server refuses for a reason no schema can carry passes only
as listed in SEMANTIC_400; an unsubscribed subscription still reads as "cancelled" (its
documented soft delete). Throttling stays on, at rates no run reaches (tests/api/conftest.py).

The run is deterministic (``FUZZ_SEED``); ``FUZZ_SEED=$RANDOM`` explores other inputs and
``FUZZ_EXAMPLES`` sets Hypothesis' examples per operation and phase. It runs as its own step of
``scripts/test`` (``make test``) and prints its totals; ``pytest -m "not fuzz"`` leaves it out.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from django.core.signals import request_started
from hypothesis import strategies as st
from schemathesis.engine import events

from reading_app.models import Subscription
from tests.api.conftest import PASSWORD, Catalog
from tests.factories import UserFactory

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

MIN_REQUESTS = 5000  # issue 9: "over at least 5,000 generated requests in total"
SEED = int(os.environ.get("FUZZ_SEED", "20240901"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "55"))

STAFF_ONLY = ["search_analytics_retrieve"]
# The staff experiments and business-rules APIs, every operation of each.
STAFF_ONLY_PREFIXES = ("experiments_", "rules_")
REVOKES_TOKEN = ["auth_logout_create", "auth_logout_all_create"]

# Schema-valid requests that some operations refuse (400) for reasons a JSON Schema cannot
# express: the rule needs the database, another parameter or the clock. Such a refusal passes
# positive_data_acceptance only when its error envelope has the code and names only the
# fields listed here; any other 400 to a schema-valid request still fails the run.
SEMANTIC_400: dict[str, tuple[str, set[str], str]] = {
    # operationId: (error code, fields `details` may name, why)
    "items_list": ("invalid_cursor", {"cursor"}, "a cursor this server did not issue"),
    "reading_continue_list": ("invalid_cursor", {"cursor"}, "a cursor this server did not issue"),
    "reading_saves_list": ("invalid_cursor", {"cursor"}, "a cursor this server did not issue"),
    "experience_home_sections_retrieve": (
        "invalid_cursor",
        {"cursor"},
        "a cursor this server did not issue",
    ),
    "search_retrieve": ("invalid", {"provider", "from", "to"}, "items-only filters on providers"),
    "search_analytics_retrieve": ("invalid", {"from", "to"}, "from after to, or over 366 days"),
    "search_clicks_create": ("invalid", {"search_id"}, "a search_id no search returned"),
    "auth_register_create": ("invalid", {"password"}, "Django's password validators"),
    "auth_token_create": ("invalid_credentials", set(), "a wrong username or password"),
    "experience_interactions_create": (
        "invalid",
        {"interactions", "occurred_at"},
        "occurred_at older than EVENTS_CLIENT_MAX_AGE_DAYS",
    ),
    "subscriptions_create": ("invalid", {"provider"}, "a newsletter that does not exist"),
    "me_interests_update": ("invalid", {"categories"}, "a category that does not exist"),
    "me_profile_partial_update": (
        "invalid",
        {"timezone", "country", "region", "language", "non_field_errors"},
        "a zone, country or language not in its list, a region without a country, an empty "
        "body or an unknown field",
    ),
    "me_mutes_create": ("invalid", {"id"}, "past the number of mutes a reader may have"),
    "experiments_create": (
        "invalid",
        {"variants", "config", "layer", "key"},
        "weights not summing to 100, not one control, a repeated variant key, a config the "
        "services refuse or jsonb cannot store (NUL); a layer that does not exist; the "
        "reserved key 'layers'",
    ),
    "experiments_partial_update": ("invalid", {"layer"}, "a layer that does not exist"),
    "experiments_variants_update": (
        "invalid",
        {"variants", "config"},
        "weights not summing to 100, not one control, a repeated key, a config the services "
        "refuse or jsonb cannot store (NUL)",
    ),
    # A rule's fields depend on its kind (for a change, the stored rule's kind and fields
    # merged with the ones sent), on each other and on the catalog. A 409 (a contradiction with
    # another active rule) is documented and accepted for valid input as it is.
    "rules_create": (
        "invalid",
        {
            "starts_at",
            "ends_at",
            "provider_id",
            "item_ids",
            "budget",
            "user_cap_per_day",
            "positions",
            "target",
            "target_id",
            "keyword",
            "mode",
            "value",
            "max_per_provider",
        },
        "a field the kind needs missing (a campaign's dates, items, budget, cap and slots; a "
        "target and its id or keyword; a boost's mode and value; one of diversity's caps), a "
        "target the kind does not take, a value out of its mode's range, an end not after the "
        "start, a keyword not made of words once spaces are collapsed, a provider, item or "
        "category that does not exist",
    ),
}
SEMANTIC_400["rules_partial_update"] = (
    "invalid",
    SEMANTIC_400["rules_create"][1],
    "as rules_create, checked on the stored rule with the changes applied (a new kind needs "
    "fields of its own)",
)


def _named_fields(details: Any) -> set[str]:
    """Every field name in an error's details, nested ones too (list indexes left out); a
    path names its first field ("variants.b.config.weights" names "variants")."""
    if not isinstance(details, dict):
        return set()
    names = {k.split(".")[0] for k in details if not k.isdigit()}
    for value in details.values():
        names |= _named_fields(value)
    return names


def _is_semantic_400(operation_id: str, response: Any) -> bool:
    rule = SEMANTIC_400.get(operation_id)
    if rule is None or response.status_code != 400:
        return False
    code, fields, _why = rule
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return error["code"] == code and _named_fields(error["details"]) <= fields


@dataclass
class Tally:
    """What the fuzzing did: requests per identity and operation, distinct failures."""

    requests: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    # Answers per operation and status class ("2xx", "4xx", ...): shows the fuzzing reached
    # real rows and valid paths, not only validation errors.
    answers: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    served: int = 0
    semantic_400: int = 0  # schema-valid requests refused for a SEMANTIC_400 reason
    failures: dict[tuple[str, ...], str] = field(default_factory=dict)

    def add_failure(
        self, identity: str, operation: str, check: str, failure: Any, curl: str, answer: str
    ) -> None:
        status = _status_of(failure)
        key = (identity, operation, check, failure.title, status)
        self.failures.setdefault(
            key, f"{failure.message.strip()[:300]}\n    {curl[:600]}\n    -> {answer}"
        )

    def report(self) -> str:
        per_op: collections.Counter[str] = collections.Counter()
        per_identity: collections.Counter[str] = collections.Counter()
        for (identity, operation), n in self.requests.items():
            per_op[operation] += n
            per_identity[identity] += n
        lines = [
            f"schemathesis: {self.served} requests served, {sum(per_op.values())} generated "
            f"cases, {len(self.failures)} distinct failures (seed {SEED}); "
            f"{self.semantic_400} schema-valid requests refused for a SEMANTIC_400 reason",
            "  by identity: " + ", ".join(f"{k} {v}" for k, v in sorted(per_identity.items())),
        ]
        for op, n in sorted(per_op.items()):
            classes = sorted((c, k) for (o, c), k in self.answers.items() if o == op)
            lines.append(f"  {n:6d}  {op}  ({', '.join(f'{c} {k}' for c, k in classes)})")
        for (identity, operation, check, title, status), detail in sorted(self.failures.items()):
            lines.append(f"FAIL [{identity}] {operation}: {check} ({title}; HTTP {status})")
            lines.append(f"    {detail}")
        return "\n".join(lines)


def _status_of(failure: Any) -> str:
    for attr in ("status_code", "status"):
        value = getattr(failure, attr, None)
        if isinstance(value, int):
            return str(value)
    match = re.search(r"\b([1-5]\d\d)\b", failure.message or "")
    return match.group(1) if match else "?"


@contextmanager
def _counting_served(tally: Tally) -> Iterator[None]:
    """Count the requests the server received (the live server runs in this process)."""

    def count(sender: Any, **kwargs: Any) -> None:
        tally.served += 1

    request_started.connect(count, weak=False, dispatch_uid="fuzz-count")
    try:
        yield
    finally:
        request_started.disconnect(dispatch_uid="fuzz-count")


def _token(base_url: str, username: str) -> str:
    response = requests.post(
        f"{base_url}/api/v1/auth/token/",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def _valid_as(pool: str, value: Any) -> bool:
    """Whether ``value`` is well-formed for the pool's field (only those are swapped)."""
    if isinstance(value, bool):
        return False
    if pool in ("item_id", "id", "rule_id", "provider_id", "target_id"):
        # Within the schemas' bounds (1..2^63-1): an id past them is a negative case.
        return (isinstance(value, int) and 1 <= value <= 2**63 - 1) or (
            isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value) is not None
        )
    if pool in ("slug", "provider", "key"):
        return isinstance(value, str) and re.fullmatch(r"[-a-zA-Z0-9_]{1,220}", value) is not None
    if pool == "search_id":
        try:
            return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
        except ValueError:
            return False
    return False


# Body fields that name rows, and the pool of real values each draws from.
BODY_POOLS = {
    "provider": "provider",
    "id": "item_id",
    "search_id": "search_id",
    "provider_id": "provider_id",  # a rule's
    "target_id": "target_id",  # a rule's: a provider, item or category
}


def _with_real_ids(schema: Any, real: dict[str, list[Any]]) -> None:
    """Sometimes swap a well-formed generated id or slug for one of the seeded catalog's.

    Only values valid for their field are swapped, so a negative case stays negative.
    """

    def swap(name: str, value: Any) -> st.SearchStrategy[Any]:
        options = real.get(name)
        if not options or not _valid_as(name, value):
            return st.just(value)
        cast = str if isinstance(value, str) else (lambda v: v)
        return st.one_of(st.just(value), st.sampled_from([cast(v) for v in options]))

    @schema.hook("flatmap_path_parameters")
    def real_path_ids(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy:
        if not path_parameters:
            return st.just(path_parameters)
        names = list(path_parameters)
        return st.tuples(*(swap(n, path_parameters[n]) for n in names)).map(
            lambda values: dict(zip(names, values, strict=True))
        )

    @schema.hook("flatmap_body")
    def real_body_ids(context: Any, body: Any) -> st.SearchStrategy:
        if isinstance(body, dict) and isinstance(body.get("interactions"), list):
            entries = body["interactions"]
            if entries and all(isinstance(e, dict) and "item_id" in e for e in entries):
                return st.tuples(*(swap("item_id", e["item_id"]) for e in entries)).map(
                    lambda ids: {
                        **body,
                        "interactions": [
                            {**e, "item_id": i} for e, i in zip(entries, ids, strict=True)
                        ],
                    }
                )
        if isinstance(body, dict):
            names = [n for n in body if n in BODY_POOLS]
            items = body.get("item_ids")  # a rule's items
            items = items if isinstance(items, list) else []
            if names or items:
                return st.tuples(
                    st.tuples(*(swap(BODY_POOLS[n], body[n]) for n in names)),
                    st.tuples(*(swap("item_id", i) for i in items)),
                ).map(
                    lambda values: {
                        **body,
                        **dict(zip(names, values[0], strict=True)),
                        **({"item_ids": list(values[1])} if items else {}),
                    }
                )
        return st.just(body)


def _only(raw_schema: dict[str, Any], include: list[str] | None, exclude: list[str] | None):
    """The schema with only the operations one identity fuzzes."""
    paths: dict[str, Any] = {}
    for path, item in raw_schema["paths"].items():
        kept = {
            method: operation
            for method, operation in item.items()
            if (include is None or operation["operationId"] in include)
            and operation["operationId"] not in (exclude or [])
        }
        if kept:
            paths[path] = kept
    return {**raw_schema, "paths": paths}


def _run(
    base_url: str,
    raw_schema: dict[str, Any],
    identity: str,
    tally: Tally,
    real: dict[str, list[Any]],
    token: str | None,
    fresh_token_for: str | None = None,
) -> None:
    config: dict[str, Any] = {
        "base-url": base_url,
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES, "mode": "all", "database": "none"},
        # Sequences (create, read, delete, read again) for the reader, the one identity that
        # owns rows; schemathesis infers the links between operations from the schema.
        "phases": {
            "stateful": {
                "enabled": identity == "reader",
                "max-steps": 6,
                "generation": {"max-examples": 15},
            }
        },
        "workers": 1,
        # No state carried between runs (schemathesis would keep it in .schemathesis/): the
        # same seed and schema give the same requests.
        "cache": {"enabled": False},
        "continue-on-failure": True,
        "request-timeout": 30,
    }
    if token:
        config["headers"] = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_dict(
        raw_schema, config=schemathesis.Config.from_dict(config)
    )
    _with_real_ids(schema, real)

    if fresh_token_for:
        # Each call revokes the token it is sent with: sign in again for every generated
        # request, so that each one meets a valid token, not only the first.
        @schema.auth(refresh_interval=None)
        class SignInAgain:
            def get(self, case: Any, context: Any) -> str:
                return _token(base_url, fresh_token_for)

            def set(self, case: Any, token: str, context: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Token {token}"}

    @schema.hook("filter_failure")
    def documented_behaviour(context: Any, failure: Any, case: Any, response: Any) -> bool:
        """Keep every failure but a semantic 400 (SEMANTIC_400) and the documented
        unsubscribe, which keeps the subscription as cancelled (its GET answers 200)."""
        operation_id = case.operation.definition.raw["operationId"]
        if "positive_data_acceptance" in failure.checks:
            return not _is_semantic_400(operation_id, response)
        if "use_after_free" in failure.checks and operation_id == "subscriptions_retrieve":
            return response.status_code != 200 or response.json().get("status") != "cancelled"
        return True

    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            tally.requests[(identity, recorder.label)] += len(recorder.interactions)
            tally.semantic_400 += sum(recorder.filtered_failures.values())
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    status_class = f"{interaction.response.status_code // 100}xx"
                    tally.answers[(recorder.label, status_class)] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    info = check.failure_info
                    if info is not None:
                        interaction = recorder.interactions.get(info.failure.case_id or case_id)
                        answer = interaction.response if interaction else None
                        tally.add_failure(
                            identity,
                            recorder.label,
                            check.name,
                            info.failure,
                            info.code_sample,
                            answer.content[:300].decode(errors="replace") if answer else "",
                        )
        elif isinstance(event, events.NonFatalError):
            tally.failures.setdefault(
                (identity, event.label, "error", type(event.value).__name__, "-"),
                str(event.value)[:300],
            )
        elif isinstance(event, events.FatalError):
            raise event.exception


def _seed_reader(base_url: str, token: str, catalog: Catalog) -> None:
    """Rows of the reader's own, made through the API, so that their lists are not empty."""
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    v1 = f"{base_url}/api/v1"
    answers = [
        api.put(f"{v1}/me/interests/", json={"categories": ["space", "cooking"]}),
        *(api.post(f"{v1}/subscriptions/", json={"provider": p.slug}) for p in catalog.providers),
        *(api.put(f"{v1}/reading/saves/{i.pk}/") for i in catalog.items[:3]),
        *(
            api.put(f"{v1}/reading/progress/{i.pk}/", json={"progress": 0.5, "position": 10})
            for i in catalog.items[:3]
        ),
        api.post(
            f"{v1}/experience/interactions/",
            json={
                "interactions": [
                    {"event_id": str(uuid.uuid4()), "item_id": i.pk, "type": "click"}
                    for i in catalog.items[:4]
                ]
            },
        ),
    ]
    assert all(a.status_code < 300 for a in answers), [a.text for a in answers]


def _seed_experiments(base_url: str, token: str) -> list[str]:
    """A layer, a draft and a running experiment made through the staff API; their keys."""
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    v1 = f"{base_url}/api/v1/experiments"
    variants = [
        {"key": "control", "weight": 50, "is_control": True},
        {"key": "treat", "weight": 50},
    ]
    answers = [api.post(f"{v1}/layers/", json={"key": "home"})]
    for key in ("fuzz-draft", "fuzz-running"):
        answers.append(
            api.post(
                f"{v1}/",
                json={
                    "key": key,
                    "hypothesis": "h",
                    "layer": "home",
                    "traffic_share": 10,
                    "variants": variants,
                },
            )
        )
    answers.append(api.post(f"{v1}/fuzz-running/start/"))
    assert all(a.status_code < 300 for a in answers), [a.text for a in answers]
    return ["fuzz-draft", "fuzz-running"]


def _seed_rules(base_url: str, token: str, catalog: Catalog) -> list[int]:
    """A rule of each kind (and an inactive one) made through the staff API; their ids."""
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    now = datetime.now(UTC)
    bodies = [
        {
            "name": "fuzz campaign",
            "kind": "sponsored",
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=6)).isoformat(),
            "item_ids": [catalog.items[0].pk],
            "budget": 1000,
            "positions": [2],
            "user_cap_per_day": 3,
        },
        {"name": "fuzz block", "kind": "block", "target": "keyword", "keyword": "giveaway"},
        {
            "name": "fuzz boost",
            "kind": "boost",
            "target": "category",
            "target_id": catalog.categories[0].pk,
            "mode": "multiply",
            "value": 1.5,
        },
        {"name": "fuzz variety", "kind": "diversity", "max_per_provider": 2, "mmr_lambda": 0.7},
        {
            "name": "fuzz paused",
            "kind": "block",
            "active": False,
            "target": "provider",
            "target_id": catalog.providers[2].pk,
        },
    ]
    answers = [api.post(f"{base_url}/api/v1/rules/", json=body) for body in bodies]
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    return [a.json()["id"] for a in answers]


def test_schemathesis_finds_no_server_error_and_no_contract_violation(
    http_server, catalog: Catalog
):
    base_url = http_server.url
    reader = UserFactory(username="fuzz-reader")
    leaver = UserFactory(username="fuzz-leaver")
    staff = UserFactory(username="fuzz-staff", is_staff=True)
    reader_token = _token(base_url, reader.username)
    staff_token = _token(base_url, staff.username)
    _seed_reader(base_url, reader_token, catalog)
    real: dict[str, list[Any]] = {
        "item_id": [i.pk for i in catalog.items],
        "id": [i.pk for i in catalog.items]
        + list(Subscription.objects.filter(user=reader).values_list("pk", flat=True)),
        "slug": [p.slug for p in catalog.providers],
        "provider": [p.slug for p in catalog.providers],
        "key": _seed_experiments(base_url, staff_token),
        "rule_id": _seed_rules(base_url, staff_token, catalog),
        "provider_id": [p.pk for p in catalog.providers],
        "target_id": [p.pk for p in catalog.providers]
        + [i.pk for i in catalog.items]
        + [c.pk for c in catalog.categories],
        "search_id": [
            requests.get(f"{base_url}/api/v1/search/", params={"q": q}, timeout=10).json()[
                "search_id"
            ]
            for q in ("rockets", "orbit", "")
        ],
    }

    raw_schema = requests.get(f"{base_url}/api/schema/?format=json", timeout=30).json()
    staff_only = STAFF_ONLY + [
        operation["operationId"]
        for item in raw_schema["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict)
        and operation.get("operationId", "").startswith(STAFF_ONLY_PREFIXES)
    ]
    tally = Tally()
    quiet = logging.getLogger("django.request")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # thousands of expected 4xx; 5xx are still logged
    try:
        with _counting_served(tally):
            for identity, token, include, exclude in (
                ("anonymous", None, None, None),
                ("reader", reader_token, None, REVOKES_TOKEN),
                ("staff", staff_token, staff_only, None),
                ("leaver", None, REVOKES_TOKEN, None),
            ):
                schema = _only(raw_schema, include, exclude)
                fresh = leaver.username if identity == "leaver" else None
                _run(base_url, schema, identity, tally, real, token, fresh_token_for=fresh)
    finally:
        quiet.setLevel(level)

    report = tally.report()
    print("\n" + report)
    assert not tally.failures, report
    assert tally.served >= MIN_REQUESTS, report
