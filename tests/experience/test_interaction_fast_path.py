"""The interaction batch's fast validation path returns exactly what DRF's fields return.

``InteractionSerializer.run_validation`` takes plainly valid input without DRF's per-field
machinery (a third of an ingestion request's CPU) and hands anything else to the fields. These
tests feed both paths the same input, valid and hostile, and require the same answer: the same
validated value, or the fast path stepping aside so that the fields write the error.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from experience_app.api.serializers import InteractionBatchSerializer, InteractionSerializer

NOW = datetime.now(UTC)
VALID = {
    "event_id": str(uuid.uuid4()),
    "item_id": 42,
    "type": "click",
    "occurred_at": (NOW - timedelta(hours=1)).isoformat(),
    "request_id": str(uuid.uuid4()),
    "section": "for_you",
    "position": 3,
    "dwell_ms": 1200,
    "session_id": "s-1_A",
}


def slow(data):
    """What the fields alone return (or the error they raise)."""
    serializer = InteractionSerializer()
    try:
        return serializers.Serializer.run_validation(serializer, data)
    except serializers.ValidationError as error:
        return ("error", error.detail)


def fast(data):
    return InteractionSerializer()._fast_path(data)


def test_a_plainly_valid_interaction_takes_the_fast_path_with_the_fields_answer():
    assert fast(VALID) is not None
    assert fast(VALID) == dict(slow(VALID))
    minimal = {k: VALID[k] for k in ("event_id", "item_id", "type")}
    assert fast(minimal) == dict(slow(minimal))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", 1),
        ("event_id", True),
        ("event_id", "urn:uuid:" + str(uuid.UUID(int=1))),
        ("event_id", None),
        ("item_id", True),
        ("item_id", "42"),
        ("item_id", 42.0),
        ("item_id", 0),
        ("item_id", 2**63),
        ("type", "clik"),
        ("type", 1),
        ("type", ""),
        ("occurred_at", "yesterday"),
        ("occurred_at", (NOW + timedelta(days=1)).isoformat()),
        ("occurred_at", (NOW - timedelta(days=400)).isoformat()),
        ("occurred_at", None),
        ("occurred_at", 1_700_000_000),
        ("request_id", 7),
        ("section", "nope"),
        ("section", None),
        ("position", -1),
        ("position", 10_001),
        ("position", False),
        ("dwell_ms", 86_400_001),
        ("dwell_ms", 1.5),
        ("session_id", "a b"),
        ("session_id", "x" * 65),
        ("session_id", "abc\n"),
        ("session_id", ""),
    ],
)
def test_anything_not_plainly_valid_goes_to_the_fields_which_reject_it(field, value):
    data = {**VALID, field: value}
    assert fast(data) is None
    assert slow(data)[0] == "error"


def test_values_the_fields_take_in_another_spelling_agree():
    for data in (
        {**VALID, "event_id": VALID["event_id"].upper()},
        {**VALID, "event_id": uuid.UUID(VALID["event_id"]).hex},
        {**VALID, "request_id": None, "section": ""},
        {**VALID, "occurred_at": (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        {**VALID, "occurred_at": (NOW - timedelta(minutes=5)).replace(tzinfo=None).isoformat()},
        {**VALID, "unknown": {"nested": [1, 2]}},
    ):
        assert fast(data) == dict(slow(data)), data


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True),
    st.text(max_size=70),
    st.sampled_from(["click", "read", "for_you", "", "s-1", VALID["event_id"], "2026-01-01"]),
    st.just((NOW - timedelta(hours=2)).isoformat()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from([*VALID, "other"]),
        values,
        max_size=10,
    ).map(lambda extra: {**{k: VALID[k] for k in ("event_id", "item_id", "type")}, **extra})
)
def test_whenever_the_fast_path_answers_the_fields_give_the_same_answer(data):
    answer = fast(data)
    if answer is not None:
        assert answer == dict(slow(data))


def test_a_batch_reports_the_bad_entry_at_its_index_as_before():
    batch = InteractionBatchSerializer(
        data={"interactions": [VALID, {**VALID, "item_id": "42"}, VALID]}
    )
    assert not batch.is_valid()
    assert list(batch.errors["interactions"]) == [1]
    assert "item_id" in batch.errors["interactions"][1]
