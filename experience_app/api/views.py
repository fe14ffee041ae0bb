"""Thin views of the home experience."""

from __future__ import annotations

from dataclasses import asdict

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experience_app import selectors
from experience_app.api.place import proxy_place
from experience_app.api.serializers import (
    HomeSerializer,
    InteractionBatchSerializer,
    InteractionResultSerializer,
    InterestsOutSerializer,
    InterestsSerializer,
    SectionPageSerializer,
)
from experience_app.services import feed, interests
from experience_app.services.interactions import InteractionIn, interactions_record
from inbo.api.schema import error_responses
from inbo.api.throttling import THROTTLED
from reading_app import public as reading

# What the X-Client-Platform header may say (experiments target by platform); anything
# else is ignored.
PLATFORMS = ("web", "ios", "android")


class HomeView(APIView):
    @extend_schema(
        summary="The personalized home feed",
        description="Ordered sections, each with its first page, reason and next cursor. "
        "Every item carries the signals it was ranked on. `request_id` attributes "
        "interactions to this response.",
        parameters=[
            OpenApiParameter(
                "X-Client-Platform",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="The client's platform, `web`, `ios` or `android` (experiments "
                "may target one); any other value is ignored, never refused.",
            )
        ],
        responses={200: HomeSerializer, **error_responses(401)},
        tags=["experience"],
    )
    def get(self, request: Request) -> HttpResponse:
        # The body is sent as built (cached JSON spliced in), not re-rendered by DRF.
        platform = request.headers.get("X-Client-Platform", "").strip().lower()
        body = feed.home_json(
            request.user.pk,
            platform=platform if platform in PLATFORMS else None,
            place=proxy_place(request),
        )
        return HttpResponse(body, content_type="application/json")


class SectionPageView(APIView):
    @extend_schema(
        summary="A further page of one home section",
        description="`cursor` is a section's `next_cursor`; absent or empty, the section's "
        "first page. A cursor we did not issue, or another section's, is a 400 "
        "`invalid_cursor`; an unknown section is a 404.",
        parameters=[
            OpenApiParameter("key", str, OpenApiParameter.PATH, enum=list(feed.SECTION_ORDER)),
            OpenApiParameter(
                "cursor",
                str,
                required=False,
                description="`next_cursor` of the section; absent or empty: its first page.",
            ),
        ],
        responses={200: SectionPageSerializer, **error_responses(400, 401, 404)},
        tags=["experience"],
    )
    def get(self, request: Request, key: str) -> Response:
        # The section is checked before the cursor: an unknown one is a 404 whatever follows.
        cursor = request.query_params.get("cursor") or ""
        return Response(feed.section_page(request.user.pk, key, cursor, place=proxy_place(request)))


class InteractionsView(APIView):
    throttle_classes = THROTTLED  # per user and per address (THROTTLE_RATE_INTERACTIONS)
    throttle_scope = "interactions"

    @extend_schema(
        summary="Report interactions with served items (batch, idempotent)",
        description="Each interaction is stored once per `event_id`: a retried batch is "
        "never double counted. An interaction with an unknown item is rejected alone.",
        request=InteractionBatchSerializer,
        responses={200: InteractionResultSerializer, **error_responses(400, 401, 429)},
        tags=["experience"],
    )
    def post(self, request: Request) -> Response:
        data = InteractionBatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        now = timezone.now()
        batch = [
            InteractionIn(
                event_id=i["event_id"],
                item_id=i["item_id"],
                interaction_type=i["type"],
                occurred_at=i.get("occurred_at") or now,
                request_id=i.get("request_id"),
                section=i.get("section") or "",
                position=i.get("position"),
                dwell_ms=i.get("dwell_ms"),
                session_id=i.get("session_id") or "",
            )
            for i in data.validated_data["interactions"]
        ]
        result = interactions_record(
            user_id=request.user.pk, interactions=batch, now=now, place=proxy_place(request)
        )
        body = asdict(result)
        return Response(InteractionResultSerializer(body).data)


class InterestsView(APIView):
    @extend_schema(
        summary="My onboarding interests",
        responses={200: InterestsOutSerializer, **error_responses(401)},
        tags=["experience"],
    )
    def get(self, request: Request) -> Response:
        ids = selectors.interest_category_ids(user_id=request.user.pk)
        return Response({"categories": reading.categories_by_id(ids)})

    @extend_schema(
        summary="Set my onboarding interests (replaces them)",
        request=InterestsSerializer,
        responses={200: InterestsOutSerializer, **error_responses(400, 401)},
        tags=["experience"],
    )
    def put(self, request: Request) -> Response:
        data = InterestsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = interests.interests_set(
            user_id=request.user.pk, category_slugs=data.validated_data["categories"]
        )
        return Response({"categories": reading.categories_by_id(ids)})
