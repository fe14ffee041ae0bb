"""Examples for every operation's request, responses and errors (DOC-003).

They live in one module, keyed by ``operationId``, and a drf-spectacular postprocessing hook
(``add_examples``, listed in ``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``) writes them into
the generated schema. Views keep their ``@extend_schema`` to what they accept and return; the
examples of a whole flow (the same user, item and search across operations) read together here.

The hook fills, for each operation:

* the request body's ``examples`` from the ``request_only`` examples;
* each response's ``examples`` from the ``response_only`` examples whose ``status_codes``
  name it;
* the documented 401, 403, 404 and 429 responses with the standard error examples when the
  operation gives none of its own (the messages are the API's own).

``tests/api/test_examples.py`` holds them to the schema: every operation with a body has a
request example, every operation a success and an error example, and each example validates
against the schema it illustrates. Schemathesis sends the request examples to the live test
server in its examples phase (``tests/api/test_fuzz.py``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from drf_spectacular.utils import OpenApiExample

# --- Building blocks: one reader, one newsletter, one issue, one search -------------------
USER = {
    "id": 12,
    "username": "ada",
    "email": "ada@example.com",
    "date_joined": "2024-05-01T09:12:44Z",
}
TOKEN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
SPACE = {"slug": "space", "name": "Space", "parent": None}
ROCKETS = {"slug": "rockets", "name": "Rockets", "parent": "space"}
PROVIDER_REF = {"id": 7, "slug": "orbit-weekly", "name": "Orbit Weekly", "is_sponsored": False}
PROVIDER = {
    **PROVIDER_REF,
    "description": "Launches, landings and the economics of getting to orbit, every Thursday.",
    "categories": [SPACE, ROCKETS],
    "language": "en",
    "country": "US",
    "website": "https://orbit-weekly.example/",
    "created_at": "2024-01-15T10:00:00Z",
}
ITEM_SUMMARY = {
    "id": 42,
    "title": "Reusable rockets land again",
    "summary": "Three boosters flew their tenth mission this month.",
    "url": "https://orbit-weekly.example/issues/42",
    "provider": PROVIDER_REF,
    "published_at": "2024-05-02T07:30:00Z",
    "word_count": 1240,
    "reading_time_minutes": 6,
    "language": "en",
}
ITEM = {**ITEM_SUMMARY, "categories": [ROCKETS]}
ITEM_DETAIL = {**ITEM, "body": "Three boosters flew their tenth mission this month. …"}
REQUEST_ID = "5d0c1c7e-3b1a-4f4e-9c61-0a6f3f0d2b11"
SEARCH_ID = "b7e2f8a4-61d3-4c0e-8f5a-2d9c4e1a7b36"
EVENT_ID = "3f1c2a9e-0b7d-4c55-9a51-6c2f0e1d8b47"
CURSOR = "eyJrIjoiZm9yX3lvdSIsIm8iOjIwLCJyIjoiNWQwYzFjN2UifQ"
PAGE_CURSOR = "cD0yMDI0LTA1LTAyKzA3JTNBMzAlM0EwMCUyQjAwJTNBMDA%3D"
FEED_ENTRY = {
    "position": 0,
    "item": ITEM,
    "score": 0.82,
    "sponsored": False,
    "explanation": {
        "popularity": 0.61,
        "freshness": 0.93,
        "affinity": 0.75,
        "provider_affinity": 0.4,
        "subscribed": 1.0,
        "seen": 0.0,
        "ctr": 0.061,
        "clicks_log": 3.9,
        "age_hours_log": 1.8,
        "similarity": 0.52,
    },
    "top_features": [
        {"feature": "affinity", "contribution": 0.41},
        {"feature": "similarity", "contribution": 0.22},
        {"feature": "ctr", "contribution": -0.08},
    ],
}
SECTION = {
    "key": "for_you",
    "title": "For you",
    "reason": "Because you follow Space and Rockets.",
    "items": [FEED_ENTRY],
    "next_cursor": CURSOR,
}
SUBSCRIPTION = {
    "id": 3,
    "provider": PROVIDER_REF,
    "status": "active",
    "created_at": "2024-05-01T09:20:00Z",
    "updated_at": "2024-05-01T09:20:00Z",
}
PROGRESS = {
    "item": ITEM_SUMMARY,
    "progress": 0.4,
    "position": 1200,
    "started_at": "2024-05-02T08:01:10Z",
    "updated_at": "2024-05-02T08:04:52Z",
    "completed_at": None,
}
SAVED = {"item": ITEM_SUMMARY, "created_at": "2024-05-02T08:05:00Z"}
VARIANTS = [
    {"key": "control", "weight": 50, "is_control": True, "config": {}},
    {
        "key": "fresh-first",
        "weight": 50,
        "is_control": False,
        "config": {"section_order": ["fresh", "for_you"]},
    },
]
EXPERIMENT = {
    "key": "fresh-first",
    "hypothesis": "Showing Fresh above For you lifts home CTR for readers of daily newsletters.",
    "layer": "home",
    "status": "draft",
    "traffic_share": 20,
    "layer_slot_start": None,
    "layer_slot_end": None,
    "targeting": {"platform": "web"},
    "primary_metric": "home_ctr",
    "guardrails": ["dismiss_rate", "latency_p95"],
    "variants": VARIANTS,
    "started_at": None,
    "stopped_at": None,
    "stop_reason": "",
    "created_at": "2024-05-02T09:00:00Z",
    "updated_at": "2024-05-02T09:00:00Z",
}
EXPERIMENT_DETAIL = {
    **EXPERIMENT,
    "variants": [{**v, "exposures": 0} for v in VARIANTS],
    "exposures": 0,
}
RUNNING_EXPERIMENT = {
    **EXPERIMENT,
    "status": "running",
    "layer_slot_start": 0,
    "layer_slot_end": 2000,
    "variants": [{**VARIANTS[0], "exposures": 1204}, {**VARIANTS[1], "exposures": 1187}],
    "exposures": 2391,
    "started_at": "2024-05-03T08:00:00Z",
    "updated_at": "2024-05-03T08:00:00Z",
}
STOPPED_EXPERIMENT = {
    **RUNNING_EXPERIMENT,
    "status": "stopped",
    "stopped_at": "2024-05-17T08:00:00Z",
    "stop_reason": "Two weeks done; the report is in.",
    "updated_at": "2024-05-17T08:00:00Z",
}
LAYER = {
    "key": "home",
    "description": "The home feed's order and sections.",
    "running_experiments": 1,
    "created_at": "2024-05-01T12:00:00Z",
}


def error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error envelope (inbo.api.errors.error_body)."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _request(name: str, value: Any, summary: str = "") -> OpenApiExample:
    return OpenApiExample(name, value=value, summary=summary, request_only=True)


def _response(name: str, value: Any, status: int, summary: str = "") -> OpenApiExample:
    return OpenApiExample(
        name, value=value, summary=summary, response_only=True, status_codes=[str(status)]
    )


def _invalid(name: str, details: dict[str, Any], summary: str = "") -> OpenApiExample:
    fields = ", ".join(details)
    return _response(name, error("invalid", f"Invalid input in: {fields}.", details), 400, summary)


# --- User control (issue 13): the reader's profile, settings, removals, mutes ----------
READER_SETTINGS = {
    "timezone": "Europe/Paris",
    "country": "FR",
    "region": "IDF",
    "language": "fr",
    "recommendations_reset_at": None,
}
MUTE = {"kind": "provider", "id": 7, "name": "Orbit Weekly", "created_at": "2024-05-03T10:00:00Z"}
READER_PROFILE = {
    "summary": ["You read a lot about Rockets.", "You often read Orbit Weekly."],
    "learned": {
        "categories": [
            {
                "id": 4,
                "name": "Rockets",
                "strength": "strong",
                "score": 14.0,
                "summary": "You read a lot about Rockets.",
            },
            {
                "id": 3,
                "name": "Space",
                "strength": "medium",
                "score": 6.0,
                "summary": "You often read about Space.",
            },
        ],
        "providers": [
            {
                "id": 7,
                "name": "Orbit Weekly",
                "strength": "strong",
                "score": 9.0,
                "summary": "You read a lot from Orbit Weekly.",
            }
        ],
        "skipped_categories": [
            {
                "id": 9,
                "name": "Celebrity",
                "strength": "skipped",
                "score": -4.0,
                "summary": "You tend to skip Celebrity.",
            }
        ],
        "skipped_providers": [],
        "degraded": False,
    },
    "picked_topics": [SPACE, ROCKETS],
    "subscriptions": 3,
    "mutes": [{**MUTE, "kind": "category", "id": 9, "name": "Celebrity"}],
    "segment": {
        "engagement": "regular",
        "engagement_summary": "You read regularly.",
        "interest_cluster": "Space, Science",
        "interest_cluster_summary": "What you read is closest to readers of Space, Science.",
        "computed_at": "2024-05-03T03:00:00Z",
    },
    "settings": READER_SETTINGS,
}
READER_CONTROL_EXAMPLES: dict[str, list[OpenApiExample]] = {
    "me_profile_retrieve": [_response("My profile", READER_PROFILE, 200)],
    "me_profile_partial_update": [
        _request("Move to Paris", {"timezone": "Europe/Paris", "country": "fr", "region": "IDF"}),
        _response("Settings", READER_SETTINGS, 200),
        _invalid(
            "Unknown time zone",
            {"timezone": ["Unknown time zone 'Mars/Olympus'; use an IANA name."]},
        ),
    ],
    "me_profile_categories_destroy": [
        _response(
            "Forgotten",
            {
                "kind": "category",
                "id": 4,
                "name": "Rockets",
                "forgotten_at": "2024-05-03T10:00:00Z",
            },
            200,
        ),
    ],
    "me_profile_providers_destroy": [
        _response(
            "Forgotten",
            {
                "kind": "provider",
                "id": 7,
                "name": "Orbit Weekly",
                "forgotten_at": "2024-05-03T10:00:00Z",
            },
            200,
        ),
    ],
    "me_profile_reset_create": [
        _response("Reset", {"recommendations_reset_at": "2024-05-03T10:00:00Z"}, 200),
    ],
    "me_mutes_retrieve": [_response("Mutes", {"mutes": [MUTE], "limit": 200}, 200)],
    "me_mutes_create": [
        _request("Mute a provider", {"kind": "provider", "id": 7}),
        _response("Muted", MUTE, 201),
        _response("Already muted", MUTE, 200),
        _invalid("Unknown kind", {"kind": ['"newsletter" is not a valid choice.']}),
    ],
    "me_mutes_destroy": [],
}


INVALID_CURSOR = _response(
    "Invalid cursor",
    error(
        "invalid_cursor",
        "The cursor is not valid; start again from the first page.",
        {"cursor": ["Not a valid cursor."]},
    ),
    400,
    "A cursor this server did not issue: start again without it.",
)

_COMPARISON = {
    "variant": "treatment",
    "diff": 0.0041,
    "ci_low": 0.0008,
    "ci_high": 0.0074,
    "lift": 0.061,
    "lift_ci_low": 0.011,
    "lift_ci_high": 0.113,
    "p_value": 0.015,
    "z": 2.43,
    "significant": True,
}
EXPERIMENT_REPORT = {
    "experiment": {
        "key": "home-section-order",
        "status": "running",
        "hypothesis": "Putting continue-reading first lifts home CTR.",
        "primary_metric": "home_ctr",
        "guardrails": ["dismiss_rate"],
        "started_at": "2024-05-01T09:00:00Z",
        "stopped_at": None,
        "stop_reason": "",
        "planned_days": 14,
        "window_end": "2024-05-08T09:00:00Z",
    },
    "generated_at": "2024-05-08T09:00:00Z",
    "warnings": [],
    "srm": {"statistic": 0.42, "p_value": 0.52, "blocking": False},
    "variants": [
        {"key": "control", "is_control": True, "weight": 50, "users": 10112, "exposures": 48210},
        {"key": "treatment", "is_control": False, "weight": 50, "users": 10021, "exposures": 47988},
    ],
    "metrics": {
        "home_ctr": {
            "kind": "ratio",
            "roles": ["primary"],
            "variants": [
                {
                    "variant": "control",
                    "users": 10112,
                    "mean": 0.0672,
                    "ci_low": 0.0649,
                    "ci_high": 0.0695,
                },
                {
                    "variant": "treatment",
                    "users": 10021,
                    "mean": 0.0713,
                    "ci_low": 0.0689,
                    "ci_high": 0.0737,
                },
            ],
            "comparisons": [
                {
                    **_COMPARISON,
                    "sequential": {
                        "looks": 7,
                        "information_fraction": 0.5,
                        "z": 2.43,
                        "bound": 3.01,
                        "crossed": False,
                        "crossed_higher": False,
                        "crossed_lower": False,
                        "first_crossed_look": None,
                    },
                }
            ],
            "cuped": {
                "theta": 0.41,
                "variance_reduction": 0.23,
                "comparisons": [{**_COMPARISON, "ci_low": 0.0012, "ci_high": 0.0070}],
            },
        },
    },
    "guardrails": [
        {
            "metric": "dismiss_rate",
            "variant": "treatment",
            "status": "ok",
            "harmful": "higher",
            "enough_users": True,
            "detail": "0.0121 in treatment vs 0.0118 in control (+2.5%; z 0.61, sequential "
            "bound 3.01)",
        }
    ],
    "series": {
        "metric": "home_ctr",
        "points": [
            {
                "variant": "treatment",
                "date": "2024-05-02",
                "lift": 0.09,
                "ci_low": -0.05,
                "ci_high": 0.25,
                "z": 1.2,
                "bound": 8.0,
            },
            {
                "variant": "treatment",
                "date": "2024-05-03",
                "lift": 0.07,
                "ci_low": -0.02,
                "ci_high": 0.17,
                "z": 1.5,
                "bound": 5.82,
            },
        ],
    },
}

# --- Standard errors, added to every operation that documents the status -------------------
NOT_SIGNED_IN = _response(
    "Not signed in",
    error("not_authenticated", "Authentication credentials were not provided."),
    401,
    "No Authorization header (send `Authorization: Token <token>`).",
)
BAD_TOKEN = _response(
    "Invalid token",
    error("authentication_failed", "Invalid token."),
    401,
    "A token that is unknown, revoked or expired: get a new one from /auth/token/.",
)
FORBIDDEN = _response(
    "Not allowed",
    error("permission_denied", "You do not have permission to perform this action."),
    403,
)
NOT_FOUND = _response("Not found", error("not_found", "Not found."), 404)
THROTTLED = _response(
    "Too many requests",
    error(
        "throttled",
        "Request was throttled. Expected available in 17 seconds.",
        {"retry_after_seconds": 17},
    ),
    429,
    "Wait `Retry-After` seconds (also in `details.retry_after_seconds`), then retry.",
)
STANDARD_ERRORS: dict[str, list[OpenApiExample]] = {
    "401": [NOT_SIGNED_IN, BAD_TOKEN],
    "403": [FORBIDDEN],
    "404": [NOT_FOUND],
    "429": [THROTTLED],
}

# --- Per operation -----------------------------------------------------------------------
# --- Business rules (issue 13, FEAT-005; staff only) ---------------------------------------
RULE_CAMPAIGN = {
    "id": 4,
    "name": "Orbit Weekly launch week",
    "kind": "sponsored",
    "active": True,
    "starts_at": "2024-05-06T00:00:00Z",
    "ends_at": "2024-05-13T00:00:00Z",
    "target": "",
    "target_id": None,
    "keyword": "",
    "mode": "",
    "value": None,
    "provider_id": 7,
    "item_ids": [42],
    "budget": 50000,
    "positions": [2],
    "user_cap_per_day": 3,
    "relevance_floor": 0.2,
    "max_per_provider": None,
    "max_per_category": None,
    "mmr_lambda": None,
    "created_at": "2024-05-03T10:00:00Z",
    "updated_at": "2024-05-03T10:00:00Z",
    "updated_by": "ada",
}
RULE_CAMPAIGN_IN = {
    k: RULE_CAMPAIGN[k]
    for k in (
        "name",
        "kind",
        "starts_at",
        "ends_at",
        "provider_id",
        "item_ids",
        "budget",
        "positions",
        "user_cap_per_day",
        "relevance_floor",
    )
}
RULE_VERSION = {
    "id": 18,
    "rule_id": 4,
    "action": "update",
    "changed_by": "ada",
    "changed_at": "2024-05-04T08:00:00Z",
    "data": {"budget": 60000, "positions": [2]},
    "changes": {"budget": [50000, 60000]},
}
RULE_CONFLICT = _response(
    "Contradiction",
    error(
        "conflict",
        "This rule contradicts active rules: rule 9: item 42 is both blocked and sponsored.",
        {"conflicts": ["rule 9: item 42 is both blocked and sponsored"]},
    ),
    409,
    "Blocked and promoted at once, or two campaigns on one slot at overlapping times.",
)

RULES_EXAMPLES: dict[str, list[OpenApiExample]] = {
    "rules_list": [
        _response(
            "Rules",
            {"count": 1, "next": None, "previous": None, "results": [RULE_CAMPAIGN]},
            200,
        ),
        _invalid("Bad kind", {"kind": ['"pin" is not a valid choice.']}),
    ],
    "rules_create": [
        _request("A campaign", RULE_CAMPAIGN_IN),
        _response("Created", RULE_CAMPAIGN, 201),
        _response(
            "Slot out of range",
            error(
                "invalid",
                "Positions are from 0 to 9 (the first page).",
                {"positions": ["Positions are from 0 to 9 (the first page)."]},
            ),
            400,
        ),
        RULE_CONFLICT,
    ],
    "rules_retrieve": [_response("Campaign", RULE_CAMPAIGN, 200)],
    "rules_destroy": [],
    "rules_partial_update": [
        _request("More budget", {"budget": 60000}),
        _response("Updated", {**RULE_CAMPAIGN, "budget": 60000}, 200),
        _response(
            "End before start",
            error(
                "invalid",
                "The end must come after the start.",
                {"ends_at": ["The end must come after the start."]},
            ),
            400,
        ),
        RULE_CONFLICT,
    ],
    "rules_versions_list": [
        _response(
            "Changes",
            {"count": 1, "next": None, "previous": None, "results": [RULE_VERSION]},
            200,
        ),
        _invalid("Bad page", {"page": ["Must be a whole number from 1 to 1000000."]}),
    ],
}

EXAMPLES: dict[str, list[OpenApiExample]] = {
    **RULES_EXAMPLES,
    "auth_register_create": [
        _request(
            "Sign up",
            {"username": "ada", "email": "ada@example.com", "password": "correct-horse-battery"},
        ),
        _response(
            "Signed up",
            {"token": TOKEN, "expires_at": "2024-05-31T09:12:44Z", "user": USER},
            201,
        ),
        _invalid(
            "Weak password",
            {"password": ["This password is too common."]},
            "Django's password validators apply.",
        ),
        _response(
            "Account exists",
            error(
                "account_exists",
                "An account cannot be created with this username and email. Sign in, or "
                "choose another username or email.",
            ),
            409,
        ),
    ],
    "auth_token_create": [
        _request("Sign in", {"username": "ada", "password": "correct-horse-battery"}),
        _response(
            "Token", {"token": TOKEN, "expires_at": "2024-05-31T09:12:44Z", "user": USER}, 200
        ),
        _response(
            "Wrong credentials",
            error("invalid_credentials", "Unable to sign in with these credentials."),
            400,
        ),
    ],
    "auth_logout_create": [],
    "auth_logout_all_create": [],
    "me_retrieve": [_response("Me", USER, 200)],
    "me_interests_retrieve": [
        _response("Interests", {"categories": [SPACE, ROCKETS]}, 200),
    ],
    "me_interests_update": [
        _request("Pick interests", {"categories": ["space", "rockets"]}),
        _response("Interests", {"categories": [SPACE, ROCKETS]}, 200),
        _response(
            "Unknown category",
            error(
                "invalid",
                "The input is not valid.",
                {"categories": ["Unknown category 'astrology'."]},
            ),
            400,
        ),
    ],
    **READER_CONTROL_EXAMPLES,
    "experience_home_retrieve": [
        _response(
            "Home",
            {
                "request_id": REQUEST_ID,
                "generated_at": "2024-05-02T08:00:00Z",
                "degraded": False,
                "cold_start": False,
                "ranker": "reranker:v3",
                "experiments": {"home-learned-vs-linear": "learned"},
                "cached": False,
                "sections": [
                    SECTION,
                    {
                        "key": "fresh",
                        "title": "Fresh",
                        "reason": "New from the newsletters you follow.",
                        "items": [{**FEED_ENTRY, "score": 0.64}],
                        "next_cursor": None,
                    },
                ],
            },
            200,
        ),
    ],
    "experience_home_sections_retrieve": [
        _response(
            "Next page",
            {
                **SECTION,
                "items": [{**FEED_ENTRY, "position": 20}],
                "next_cursor": None,
                "request_id": REQUEST_ID,
                "degraded": False,
            },
            200,
            "The last page: `next_cursor` is null.",
        ),
        INVALID_CURSOR,
        _response(
            "No such section",
            error("not_found", "No such section.", {"section": "weather"}),
            404,
        ),
    ],
    "experience_interactions_create": [
        _request(
            "Report a batch",
            {
                "interactions": [
                    {
                        "event_id": EVENT_ID,
                        "item_id": 42,
                        "type": "impression",
                        "request_id": REQUEST_ID,
                        "section": "for_you",
                        "position": 0,
                    },
                    {
                        "event_id": "8a4b9e61-25f0-4d7c-b3a2-9e1f6c0d5a84",
                        "item_id": 42,
                        "type": "read",
                        "request_id": REQUEST_ID,
                        "section": "for_you",
                        "position": 0,
                        "dwell_ms": 95000,
                    },
                ]
            },
            "Each event_id is generated once by the client; a retry sends the same ids.",
        ),
        _response(
            "Accepted",
            {"accepted": 2, "duplicates": 0, "rejected": [], "counted": True},
            200,
        ),
        _response(
            "Retried batch",
            {"accepted": 0, "duplicates": 2, "rejected": [], "counted": True},
            200,
            "The same batch sent again (say its answer was lost): stored once, never twice.",
        ),
        _response(
            "Unknown item",
            {
                "accepted": 1,
                "duplicates": 0,
                "rejected": [
                    {
                        "index": 1,
                        "event_id": "8a4b9e61-25f0-4d7c-b3a2-9e1f6c0d5a84",
                        "reason": "unknown_item",
                    }
                ],
                "counted": True,
            },
            200,
            "An interaction with an item that does not exist is rejected alone.",
        ),
        _response(
            "Invalid event",
            error(
                "invalid",
                "Invalid input in: interactions.",
                {"interactions": {"0": {"type": ['"zap" is not a valid choice.']}}},
            ),
            400,
        ),
    ],
    "experiments_list": [
        _response(
            "Experiments",
            {
                "count": 1,
                "next": None,
                "previous": None,
                "results": [{**EXPERIMENT, "status": "running"}],
            },
            200,
        ),
        _invalid(
            "Bad status",
            {"status": ['"paused" is not a valid choice.']},
        ),
    ],
    "experiments_create": [
        _request(
            "Create a draft",
            {
                "key": "fresh-first",
                "hypothesis": EXPERIMENT["hypothesis"],
                "layer": "home",
                "traffic_share": 20,
                "targeting": {"platform": "web"},
                "primary_metric": "home_ctr",
                "guardrails": ["dismiss_rate", "latency_p95"],
                "variants": VARIANTS,
            },
        ),
        _response("Draft", EXPERIMENT_DETAIL, 201),
        _response(
            "Weights off",
            error(
                "invalid",
                "Variant weights must sum to 100%; they sum to 90%.",
                {"variants": ["Variant weights must sum to 100%; they sum to 90%."]},
            ),
            400,
            "Every rule of the services answers so, naming the field in `details`.",
        ),
        _response(
            "Key taken",
            error("conflict", "An experiment 'fresh-first' exists already."),
            409,
        ),
    ],
    "experiments_retrieve": [_response("Running", RUNNING_EXPERIMENT, 200)],
    "experiments_partial_update": [
        _request("Clarify", {"hypothesis": EXPERIMENT["hypothesis"], "guardrails": []}),
        _response("Updated", {**RUNNING_EXPERIMENT, "guardrails": []}, 200),
        _invalid("Unknown metric", {"primary_metric": ['"revenue" is not a valid choice.']}),
        _response(
            "Allocation frozen",
            error(
                "conflict",
                "Experiment 'fresh-first' is running: its traffic_share cannot change (it "
                "would move users between variants). Create a new experiment instead.",
            ),
            409,
        ),
    ],
    "experiments_variants_update": [
        _request("Replace the variants", {"variants": VARIANTS}),
        _response("Draft", EXPERIMENT_DETAIL, 200),
        _response(
            "Two controls",
            error(
                "invalid",
                "Exactly one variant must be the control; found 2.",
                {"variants": ["Exactly one variant must be the control; found 2."]},
            ),
            400,
        ),
        _response(
            "Not a draft",
            error(
                "conflict",
                "Experiment 'fresh-first' is running: its variants and weights cannot change "
                "(it would move users between variants). Create a new experiment instead.",
            ),
            409,
        ),
    ],
    "experiments_start_create": [
        _response(
            "Running",
            {**RUNNING_EXPERIMENT, "variants": EXPERIMENT_DETAIL["variants"], "exposures": 0},
            200,
        ),
        _response(
            "Invalid draft",
            error(
                "invalid",
                "An experiment needs at least two variants.",
                {"variants": ["An experiment needs at least two variants."]},
            ),
            400,
            "A draft is validated again when it starts.",
        ),
        _response(
            "Layer full",
            error(
                "conflict",
                "Layer 'home' has no free 20% for 'fresh-first': stop an experiment in it, "
                "lower the traffic share, or use another layer.",
            ),
            409,
            "Also when it is running or stopped already: a stopped experiment never runs again.",
        ),
    ],
    "experiments_stop_create": [
        _request("Stop", {"reason": "Two weeks done; the report is in."}),
        _response("Stopped", STOPPED_EXPERIMENT, 200),
        _invalid(
            "Reason too long", {"reason": ["Ensure this field has no more than 300 characters."]}
        ),
        _response(
            "Not running",
            error(
                "conflict",
                "Experiment 'fresh-first' is stopped; only a running one stops.",
            ),
            409,
        ),
    ],
    "experiments_report_retrieve": [
        _response(
            "Report",
            EXPERIMENT_REPORT,
            200,
            "Treatment lifts home CTR by 6% (95% CI +1% to +11%) without harming dismissals.",
        ),
        _invalid(
            "Unknown metric",
            {"metric": ['"ctr" is not a valid choice.']},
        ),
    ],
    "experiments_layers_list": [
        _response(
            "Layers",
            {"count": 1, "next": None, "previous": None, "results": [LAYER]},
            200,
        ),
        _invalid("Bad page size", {"page_size": ["Must be a whole number from 1 to 100."]}),
    ],
    "experiments_layers_create": [
        _request("Create a layer", {"key": "home", "description": LAYER["description"]}),
        _response("Created", {**LAYER, "running_experiments": 0}, 201),
        _response("Exists", LAYER, 200, "Creating it again changes nothing."),
        _invalid(
            "Bad key",
            {
                "key": [
                    "Lowercase letters, digits, '-' and '_', starting with a letter or digit, "
                    "at most 64 characters."
                ]
            },
        ),
    ],
    "items_list": [
        _response(
            "Items",
            {
                "next": f"https://inbo.example/api/v1/items/?cursor={PAGE_CURSOR}",
                "previous": None,
                "results": [ITEM],
            },
            200,
        ),
        INVALID_CURSOR,
    ],
    "items_retrieve": [_response("Item", ITEM_DETAIL, 200)],
    "providers_list": [
        _response(
            "Newsletters",
            {
                "count": 31,
                "next": "https://inbo.example/api/v1/providers/?page=2",
                "previous": None,
                "results": [PROVIDER],
            },
            200,
        ),
        _invalid("Bad page", {"page": ["Must be a whole number from 1 to 1000000."]}),
    ],
    "providers_retrieve": [_response("Newsletter", PROVIDER, 200)],
    "reading_continue_list": [
        _response("Continue reading", {"next": None, "previous": None, "results": [PROGRESS]}, 200),
        INVALID_CURSOR,
    ],
    "reading_progress_retrieve": [
        _response("Progress", PROGRESS, 200),
        _response(
            "No progress yet",
            error("not_found", "No progress recorded for this item.", {"item_id": 42}),
            404,
        ),
    ],
    "reading_progress_update": [
        _request("Scrolled", {"progress": 0.4, "position": 1200}),
        _response("Progress", PROGRESS, 200),
        _invalid("Out of range", {"progress": ["Ensure this value is less than or equal to 1.0."]}),
    ],
    "reading_saves_list": [
        _response("Saved items", {"next": None, "previous": None, "results": [SAVED]}, 200),
        INVALID_CURSOR,
    ],
    "reading_saves_retrieve": [_response("Saved", SAVED, 200)],
    "reading_saves_update": [
        _response("Saved", SAVED, 201, "First save."),
        _response("Already saved", SAVED, 200, "Saving again changes nothing."),
    ],
    "reading_saves_destroy": [],
    "search_retrieve": [
        _response(
            "Results",
            {
                "search_id": SEARCH_ID,
                "query": "reusable rokets",
                "corrected_query": "reusable rockets",
                "backend": "postgres",
                "degraded": False,
                "total": 1,
                "page": 1,
                "page_size": 20,
                "facets": {
                    "category": {"rockets": 1},
                    "provider": {"orbit-weekly": 1},
                    "language": {"en": 1},
                },
                "results": [
                    {
                        "type": "item",
                        "id": 42,
                        "position": 1,
                        "score": 0.71,
                        "highlights": {"title": "<mark>Reusable</mark> <mark>rockets</mark> land"},
                        "item": ITEM,
                        "provider": None,
                    }
                ],
            },
            200,
            "A typo in the last word is corrected (`corrected_query`).",
        ),
        _invalid("Bad page size", {"page_size": ["Must be a whole number from 1 to 50."]}),
        _response(
            "Search unavailable",
            error("service_unavailable", "Search is unavailable; try again shortly."),
            503,
        ),
    ],
    "search_clicks_create": [
        _request("Click", {"search_id": SEARCH_ID, "id": 42, "position": 1}),
        _response("Recorded", {"recorded": True}, 201),
        _response(
            "Unknown search",
            error("invalid", "Unknown search_id.", {"search_id": ["No search with this id."]}),
            400,
        ),
    ],
    "search_analytics_retrieve": [
        _response(
            "Analytics",
            {
                "date_from": "2024-04-26T00:00:00Z",
                "date_to": "2024-05-03T00:00:00Z",
                "searches": 1840,
                "searches_with_clicks": 612,
                "click_through_rate": 0.333,
                "clicks": 790,
                "mean_click_position": 2.4,
                "zero_result_searches": 57,
                "degraded_searches": 0,
                "mean_latency_ms": 41.5,
                "top_queries": [
                    {
                        "query": "rockets",
                        "searches": 210,
                        "click_through_rate": 0.41,
                        "mean_results": 165.0,
                    }
                ],
                "zero_result_queries": [{"query": "astrology", "searches": 9}],
            },
            200,
        ),
        _invalid("Period too long", {"from": ["At most 366 days at a time."]}),
    ],
    "subscriptions_list": [
        _response(
            "Subscriptions",
            {"count": 1, "next": None, "previous": None, "results": [SUBSCRIPTION]},
            200,
        ),
        _invalid(
            "Bad status",
            {"status": ["Select a valid choice. gone is not one of the available choices."]},
        ),
    ],
    "subscriptions_create": [
        _request("Subscribe", {"provider": "orbit-weekly"}),
        _response("Subscribed", SUBSCRIPTION, 201),
        _response("Already subscribed", SUBSCRIPTION, 200, "Subscribing again changes nothing."),
        _response(
            "Unknown newsletter",
            error("invalid", "No such provider.", {"provider": ["Unknown provider 'nope'."]}),
            400,
        ),
    ],
    "subscriptions_retrieve": [_response("Subscription", SUBSCRIPTION, 200)],
    "subscriptions_destroy": [],
}


def _key(name: str) -> str:
    """drf-spectacular's own key for an example: the name in CamelCase."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def _entry(example: OpenApiExample) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": copy.deepcopy(example.value)}
    if example.summary:
        entry["summary"] = str(example.summary)
    if example.description:
        entry["description"] = str(example.description)
    return entry


def _json_content(container: dict[str, Any]) -> dict[str, Any] | None:
    return container.get("content", {}).get("application/json")


def add_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: write EXAMPLES into the generated schema."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            examples = list(EXAMPLES.get(operation["operationId"], []))
            responses = operation.get("responses", {})
            own_statuses = {s for e in examples if e.response_only for s in e.status_codes or []}
            anonymous_allowed = {} in operation.get("security", [])
            for status, standard in STANDARD_ERRORS.items():
                if status in responses and status not in own_statuses:
                    if status == "401" and anonymous_allowed:
                        standard = [BAD_TOKEN]  # open endpoints answer 401 to a bad token only
                    examples += standard
            for example in examples:
                if example.request_only:
                    targets = [operation.get("requestBody", {})]
                else:
                    targets = [responses.get(str(s), {}) for s in example.status_codes or []]
                for target in targets:
                    content = _json_content(target)
                    if content is not None:
                        content.setdefault("examples", {})[_key(example.name)] = _entry(example)
    return result
