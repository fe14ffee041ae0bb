"""Thin views of the staff experiments API: check the input's shape, call the lifecycle
services (which validate, lock and raise ``InvalidInput``/``Conflict``/``NotFound``), answer
with the experiment as it now is."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments_app import selectors
from experiments_app.api.serializers import (
    ExperimentCreateSerializer,
    ExperimentDetailSerializer,
    ExperimentSerializer,
    ExperimentUpdateSerializer,
    LayerCreateSerializer,
    LayerSerializer,
    StatusParamsSerializer,
    StopSerializer,
    VariantsReplaceSerializer,
    variant_specs,
)
from experiments_app.models import Layer
from experiments_app.services import lifecycle
from inbo.api.schema import error_responses
from inbo.errors import InvalidInput

TAGS = ["experiments"]
KEY = OpenApiParameter(
    "key",
    str,
    OpenApiParameter.PATH,
    description="The experiment's key.",
    pattern="^[-a-zA-Z0-9_]+$",
)


def _detail(key: str, *, status_code: int = status.HTTP_200_OK) -> Response:
    """The experiment as stored now, with exposures per variant (three queries)."""
    experiment = selectors.experiment_detail(key)
    context = {"exposures": selectors.exposure_counts(experiment.pk)}
    return Response(
        ExperimentDetailSerializer(experiment, context=context).data, status=status_code
    )


def _existing_layer(key: str) -> str:
    """The API only files experiments into layers made on purpose (a typo in a layer key
    would otherwise make a new layer and put users in two experiments meant to exclude
    each other)."""
    if not selectors.layer_exists(key):
        message = f"No layer {key!r}; create it first (POST /api/v1/experiments/layers/)."
        raise InvalidInput(message, details={"layer": [message]})
    return key


def _valid(serializer_class: type, request: Request, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class StaffOnly:
    permission_classes = [permissions.IsAdminUser]


class ExperimentListView(StaffOnly, generics.ListAPIView):
    serializer_class = ExperimentSerializer
    filter_backends: list = []

    def get_queryset(self):
        params = StatusParamsSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        return selectors.experiment_list(status=params.validated_data.get("status"))

    @extend_schema(
        summary="Experiments (staff only)",
        description="Newest first, each with its variants; `status` keeps one state.",
        parameters=[StatusParamsSerializer],
        responses={200: ExperimentSerializer(many=True), **error_responses(400, 401, 403)},
        tags=TAGS,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a draft experiment (staff only)",
        description="A draft in an existing layer, with two to eight variants: exactly one "
        "control, weights (percent) summing to 100. Nothing is assigned until it starts. "
        "A key that exists already is a 409.",
        request=ExperimentCreateSerializer,
        responses={201: ExperimentDetailSerializer, **error_responses(400, 401, 403, 409)},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = _valid(ExperimentCreateSerializer, request)
        experiment = lifecycle.experiment_create(
            key=data["key"],
            hypothesis=data["hypothesis"],
            layer_key=_existing_layer(data["layer"]),
            variants=variant_specs(data["variants"]),
            traffic_share=data["traffic_share"],
            targeting=data["targeting"],
            primary_metric=data["primary_metric"],
            guardrails=data["guardrails"],
        )
        return _detail(experiment.key, status_code=status.HTTP_201_CREATED)


class ExperimentDetailView(StaffOnly, APIView):
    @extend_schema(
        summary="One experiment (staff only)",
        description="With the users exposed to each variant so far.",
        parameters=[KEY],
        responses={200: ExperimentDetailSerializer, **error_responses(401, 403, 404)},
        tags=TAGS,
    )
    def get(self, request: Request, key: str) -> Response:
        return _detail(key)

    @extend_schema(
        summary="Edit an experiment (staff only)",
        description="Hypothesis and metrics at any time; layer, traffic share and targeting "
        "in a draft only (once started they decide who is in which variant: 409).",
        parameters=[KEY],
        request=ExperimentUpdateSerializer,
        responses={
            200: ExperimentDetailSerializer,
            **error_responses(400, 401, 403, 404, 409),
        },
        tags=TAGS,
    )
    def patch(self, request: Request, key: str) -> Response:
        experiment = lifecycle.experiment_get(key)
        changes = _valid(ExperimentUpdateSerializer, request, partial=True)
        if "layer" in changes:
            _existing_layer(changes["layer"])
        lifecycle.experiment_update(experiment, **changes)
        return _detail(key)


class ExperimentVariantsView(StaffOnly, APIView):
    @extend_schema(
        summary="Replace a draft's variants (staff only)",
        description="The whole list, as on creation. A running or stopped experiment's "
        "variants never change (409).",
        parameters=[KEY],
        request=VariantsReplaceSerializer,
        responses={
            200: ExperimentDetailSerializer,
            **error_responses(400, 401, 403, 404, 409),
        },
        tags=TAGS,
    )
    def put(self, request: Request, key: str) -> Response:
        experiment = lifecycle.experiment_get(key)
        data = _valid(VariantsReplaceSerializer, request)
        lifecycle.experiment_set_variants(experiment, variant_specs(data["variants"]))
        return _detail(key)


class ExperimentStartView(StaffOnly, APIView):
    @extend_schema(
        summary="Start a draft (staff only)",
        description="Validates it again and gives it the lowest free slot of its layer. "
        "Only a draft starts (a stopped experiment never runs again: 409); a layer with no "
        "free run of `traffic_share` percent is a 409 that says so.",
        parameters=[KEY],
        request=None,
        responses={200: ExperimentDetailSerializer, **error_responses(400, 401, 403, 404, 409)},
        tags=TAGS,
    )
    def post(self, request: Request, key: str) -> Response:
        lifecycle.experiment_start(lifecycle.experiment_get(key))
        return _detail(key)


class ExperimentStopView(StaffOnly, APIView):
    @extend_schema(
        summary="Stop a running experiment (staff only)",
        description="It assigns nobody from now on and frees its slot (kept on record). "
        "Only a running experiment stops (409 otherwise). The body is optional.",
        parameters=[KEY],
        request=StopSerializer,
        responses={200: ExperimentDetailSerializer, **error_responses(400, 401, 403, 404, 409)},
        tags=TAGS,
    )
    def post(self, request: Request, key: str) -> Response:
        experiment = lifecycle.experiment_get(key)
        data = _valid(StopSerializer, request)
        lifecycle.experiment_stop(experiment, reason=data["reason"])
        return _detail(key)


class LayerListView(StaffOnly, generics.ListAPIView):
    serializer_class = LayerSerializer
    filter_backends: list = []

    def get_queryset(self):
        return selectors.layer_list()

    @extend_schema(
        summary="Experiment layers (staff only)",
        description="Experiments of one layer never share a user.",
        responses={200: LayerSerializer(many=True), **error_responses(400, 401, 403)},
        tags=TAGS,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a layer (staff only)",
        description="A new layer with a fresh salt (201). Creating a layer that exists "
        "changes nothing (200, the layer as it is).",
        request=LayerCreateSerializer,
        responses={
            201: LayerSerializer,
            200: LayerSerializer,
            **error_responses(400, 401, 403),
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = _valid(LayerCreateSerializer, request)
        existed = selectors.layer_exists(data["key"])
        lifecycle.layer_ensure(data["key"], description=data["description"])
        layer: Layer = selectors.layer_list().get(key=data["key"])
        return Response(
            LayerSerializer(layer).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )
