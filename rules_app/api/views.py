"""Thin views of the staff rules API: check the input's shape, call the services (which
validate and answer ``InvalidInput``/``Conflict``/``NotFound``), answer with the rule."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inbo.api.schema import error_responses
from rules_app import selectors, services
from rules_app.api.serializers import (
    RuleInSerializer,
    RuleListParamsSerializer,
    RuleSerializer,
    RuleVersionSerializer,
)

TAGS = ["rules"]
RULE_ID = OpenApiParameter("rule_id", int, OpenApiParameter.PATH, description="The rule's id.")


class StaffOnly:
    permission_classes = [permissions.IsAdminUser]


class RuleListView(StaffOnly, generics.ListAPIView):
    serializer_class = RuleSerializer
    filter_backends: list = []

    def get_queryset(self):
        params = RuleListParamsSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        return selectors.rule_list(kind=params.validated_data.get("kind"))

    @extend_schema(
        summary="Business rules (staff only)",
        description="Latest changed first; `kind` keeps one kind.",
        parameters=[RuleListParamsSerializer],
        responses={200: RuleSerializer(many=True), **error_responses(400, 401, 403)},
        tags=TAGS,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a rule (staff only)",
        description="A sponsored campaign, a blocklist entry, a boost or a diversity rule "
        "(docs/RULES.md). A field the kind needs missing or out of range, an end before the "
        "start, an unknown provider, item or category is a 400 naming the field; a "
        "contradiction with an active rule (an item both blocked and boosted or sponsored, "
        "two campaigns on one slot at overlapping times) is a 409. Recorded with its author.",
        request=RuleInSerializer,
        responses={201: RuleSerializer, **error_responses(400, 401, 403, 409)},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = RuleInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.rule_create(serializer.validated_data, user=request.user)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(StaffOnly, APIView):
    @extend_schema(
        summary="One rule (staff only)",
        parameters=[RULE_ID],
        responses={200: RuleSerializer, **error_responses(401, 403, 404)},
        tags=TAGS,
    )
    def get(self, request: Request, rule_id: int) -> Response:
        return Response(RuleSerializer(services.rule_get(rule_id)).data)

    @extend_schema(
        summary="Change a rule (staff only)",
        description="The fields sent replace the stored ones and the whole rule is validated "
        "again (400, 409 as on creation). Recorded with its author and the fields changed.",
        parameters=[RULE_ID],
        request=RuleInSerializer(partial=True),
        responses={200: RuleSerializer, **error_responses(400, 401, 403, 404, 409)},
        tags=TAGS,
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        serializer = RuleInSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        rule = services.rule_update(rule_id, serializer.validated_data, user=request.user)
        return Response(RuleSerializer(rule).data)

    @extend_schema(
        summary="Delete a rule (staff only)",
        description="Its history stays (`versions/`).",
        parameters=[RULE_ID],
        responses={204: None, **error_responses(401, 403, 404)},
        tags=TAGS,
    )
    def delete(self, request: Request, rule_id: int) -> Response:
        services.rule_delete(rule_id, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleVersionListView(StaffOnly, generics.ListAPIView):
    serializer_class = RuleVersionSerializer
    filter_backends: list = []

    def get_queryset(self):
        return selectors.rule_versions(self.kwargs["rule_id"], limit=10_000)

    @extend_schema(
        summary="A rule's changes (staff only)",
        description="Who changed it, when, what changed; newest first. Kept after deletion.",
        parameters=[RULE_ID],
        # 404: a path whose id is not a number (an unknown id is an empty history).
        responses={
            200: RuleVersionSerializer(many=True),
            **error_responses(400, 401, 403, 404),
        },
        tags=TAGS,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
