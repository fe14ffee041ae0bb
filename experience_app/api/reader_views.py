"""Thin views of user control: the reader's profile, settings, removals, mutes and reset
(``experience_app.services.reader_control``)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experience_app.api.reader_serializers import (
    MAX_ID,
    ForgottenSerializer,
    MuteInSerializer,
    MuteSerializer,
    MutesOutSerializer,
    ReaderProfileSerializer,
    ReaderSettingsOutSerializer,
    ReaderSettingsSerializer,
    ResetOutSerializer,
)
from experience_app.services import reader_control
from inbo.api.schema import error_responses
from inbo.api.throttling import THROTTLED
from inbo.errors import NotFound

TAGS = ["me"]


def _target(kind: str, target_id: int) -> tuple[str, int]:
    """A kind and id from the path; NotFound for a kind we do not know or an id too large
    to name anything."""
    if kind not in reader_control.KINDS or target_id > MAX_ID:
        raise NotFound(f"No {kind} with id {target_id}.")
    return kind, target_id


class ReaderProfileView(APIView):
    throttle_classes = THROTTLED  # writes only: see get_throttles
    throttle_scope = "reader_control"

    def get_throttles(self):
        # Reading the profile is not throttled, changing it is (as every write endpoint).
        return [] if self.request.method == "GET" else super().get_throttles()

    @extend_schema(
        summary="What INBO has learned about me, and my settings",
        description="Top learned categories and providers with their strength, said in "
        "words; what you tend to skip; your picked topics (`/me/interests/`), subscriptions "
        "count, mutes, engagement segment and interest cluster; and the settings you can "
        "edit with `PATCH`. Remove a learned interest with "
        "`DELETE /me/profile/categories/{id}/` or `/me/profile/providers/{id}/`.",
        responses={200: ReaderProfileSerializer, **error_responses(401)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return Response(
            ReaderProfileSerializer(reader_control.profile_read(user_id=request.user.pk)).data
        )

    @extend_schema(
        summary="Change my settings (time zone, country, region, language)",
        description="Only the fields sent change. Each is checked: an IANA time zone, an "
        "ISO 3166-1 alpha-2 country, a region code (needs a country), an ISO 639-1 "
        "language; an unknown field is a 400. Takes effect on the next home.",
        request=ReaderSettingsSerializer,
        responses={200: ReaderSettingsOutSerializer, **error_responses(400, 401, 429)},
        tags=TAGS,
    )
    def patch(self, request: Request) -> Response:
        data = ReaderSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        stored = reader_control.settings_update(
            user_id=request.user.pk, changes=data.validated_data
        )
        return Response(ReaderSettingsOutSerializer(stored).data)


class _ForgetView(APIView):
    throttle_classes = THROTTLED
    throttle_scope = "reader_control"
    kind = ""

    def delete(self, request: Request, target_id: int) -> Response:
        kind, target = _target(self.kind, target_id)
        done = reader_control.interest_forget(user_id=request.user.pk, kind=kind, target_id=target)
        return Response(
            ForgottenSerializer(
                {"kind": done.kind, "id": done.id, "name": done.name, "forgotten_at": done.at}
            ).data
        )


_FORGET_DOC = (
    "Your events so far no longer count towards it: it leaves your learned profile and "
    "stays out of every later recount of your taste. Reading it again teaches it again "
    "(to keep it away, mute it). Idempotent; an unknown id is a 404."
)


class ForgetCategoryView(_ForgetView):
    kind = "category"

    @extend_schema(
        summary="Remove a learned category",
        description=_FORGET_DOC,
        parameters=[OpenApiParameter("target_id", int, OpenApiParameter.PATH)],
        responses={200: ForgottenSerializer, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def delete(self, request: Request, target_id: int) -> Response:
        return super().delete(request, target_id)


class ForgetProviderView(_ForgetView):
    kind = "provider"

    @extend_schema(
        summary="Remove a learned provider",
        description=_FORGET_DOC,
        parameters=[OpenApiParameter("target_id", int, OpenApiParameter.PATH)],
        responses={200: ForgottenSerializer, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def delete(self, request: Request, target_id: int) -> Response:
        return super().delete(request, target_id)


class ResetView(APIView):
    throttle_classes = THROTTLED
    throttle_scope = "reader_control"

    @extend_schema(
        summary="Reset my recommendations",
        description="Everything learned from your reading so far is forgotten: affinities, "
        "what you were shown, learned candidates. Your subscriptions, saves, reading "
        "progress, mutes and picked topics stay. The next home starts over (picked topics "
        "first).",
        request=None,
        responses={200: ResetOutSerializer, **error_responses(401, 429)},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        at = reader_control.recommendations_reset(user_id=request.user.pk)
        return Response(ResetOutSerializer({"recommendations_reset_at": at}).data)


class MutesView(APIView):
    throttle_classes = THROTTLED
    throttle_scope = "reader_control"

    def get_throttles(self):
        return [] if self.request.method == "GET" else super().get_throttles()

    @extend_schema(
        summary="My muted providers and topics",
        responses={200: MutesOutSerializer, **error_responses(401)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        body = {
            "mutes": reader_control.mutes_list(user_id=request.user.pk),
            "limit": reader_control.MAX_MUTES,
        }
        return Response(MutesOutSerializer(body).data)

    @extend_schema(
        summary="Mute a provider or topic",
        description="Its items leave every section of your home, `continue_reading` "
        "included (a muted topic's subtopics too), from the next home on. Idempotent: "
        "201 when new, 200 when it was muted already. An unknown id is a 404; past the "
        "limit, a 400.",
        request=MuteInSerializer,
        responses={
            201: MuteSerializer,
            200: MuteSerializer,
            **error_responses(400, 401, 404, 429),
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = MuteInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mute, created = reader_control.mute_add(
            user_id=request.user.pk,
            kind=data.validated_data["kind"],
            target_id=data.validated_data["id"],
        )
        return Response(MuteSerializer(mute).data, status=201 if created else 200)


class MuteView(APIView):
    throttle_classes = THROTTLED
    throttle_scope = "reader_control"

    @extend_schema(
        summary="Unmute a provider or topic",
        parameters=[
            OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(reader_control.KINDS)),
            OpenApiParameter("target_id", int, OpenApiParameter.PATH),
        ],
        responses={204: None, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def delete(self, request: Request, kind: str, target_id: int) -> HttpResponse:
        kind, target = _target(kind, target_id)
        reader_control.mute_remove(user_id=request.user.pk, kind=kind, target_id=target)
        return HttpResponse(status=204)
