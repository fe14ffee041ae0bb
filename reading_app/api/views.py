"""Thin views: validate input, call a service or selector, serialize."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inbo.api.http_cache import NOT_MODIFIED, PublicCacheMixin
from inbo.api.pagination import NewestFirstCursorPagination
from inbo.api.schema import error_responses
from inbo.errors import NotFound
from inbo.replicas import LagTolerantReads
from reading_app import caches, selectors
from reading_app.api.filters import ItemFilter, ProviderFilter, SubscriptionFilter
from reading_app.api.serializers import (
    ItemDetailSerializer,
    ItemListSerializer,
    ProgressInputSerializer,
    ProviderSerializer,
    ReadingProgressSerializer,
    SavedItemSerializer,
    SubscriptionCreateSerializer,
    SubscriptionSerializer,
)
from reading_app.services import reading

ITEM_ID = OpenApiParameter("item_id", int, OpenApiParameter.PATH, description="Item id")


@extend_schema_view(
    list=extend_schema(
        summary="List newsletters",
        responses={
            200: ProviderSerializer(many=True),
            **NOT_MODIFIED,
            **error_responses(400, 401),
        },
    ),
    retrieve=extend_schema(
        summary="One newsletter",
        responses={200: ProviderSerializer, **NOT_MODIFIED, **error_responses(401, 404)},
    ),
)
class ProviderViewSet(PublicCacheMixin, LagTolerantReads, viewsets.ReadOnlyModelViewSet):
    """Newsletters in the catalog; readable without signing in (a replica may answer). The
    same for everyone: cacheable over HTTP (ETag, 304), served from the shared page cache."""

    response_cache = caches.CATALOG_PAGES
    serializer_class = ProviderSerializer
    permission_classes = [permissions.AllowAny]
    filterset_class = ProviderFilter
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def get_queryset(self):
        return selectors.provider_list()


class ItemCursorPagination(NewestFirstCursorPagination):
    ordering = ("-published_at", "-id")


@extend_schema_view(
    list=extend_schema(
        summary="List items, newest first",
        responses={
            200: ItemListSerializer(many=True),
            **NOT_MODIFIED,
            **error_responses(400, 401),
        },
    ),
    retrieve=extend_schema(
        summary="One item with its body",
        responses={200: ItemDetailSerializer, **NOT_MODIFIED, **error_responses(401, 404)},
    ),
)
class ItemViewSet(PublicCacheMixin, LagTolerantReads, viewsets.ReadOnlyModelViewSet):
    """Published items; cursor-paginated so new items never shift a page (a replica may
    answer). The same for everyone: cacheable over HTTP (ETag, 304), served from the shared
    page cache."""

    response_cache = caches.CATALOG_PAGES
    permission_classes = [permissions.AllowAny]
    filterset_class = ItemFilter
    pagination_class = ItemCursorPagination
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return selectors.item_list()

    def get_serializer_class(self):
        return ItemDetailSerializer if self.action == "retrieve" else ItemListSerializer


@extend_schema_view(
    list=extend_schema(
        summary="My subscriptions",
        responses={200: SubscriptionSerializer(many=True), **error_responses(400, 401)},
    ),
    retrieve=extend_schema(
        summary="One of my subscriptions",
        responses={200: SubscriptionSerializer, **error_responses(401, 404)},
    ),
    destroy=extend_schema(
        summary="Unsubscribe (kept as cancelled)",
        responses={204: None, **error_responses(401, 404)},
    ),
)
class SubscriptionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The signed-in user's subscriptions; anyone else's answer 404."""

    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return selectors.subscription_list(user_id=self.request.user.pk)

    @extend_schema(
        summary="Subscribe to a newsletter",
        request=SubscriptionCreateSerializer,
        responses={
            201: SubscriptionSerializer,
            200: SubscriptionSerializer,
            **error_responses(400, 401),
        },
    )
    def create(self, request: Request) -> Response:
        data = SubscriptionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sub, changed = reading.subscription_create(
            user_id=request.user.pk, provider_slug=data.validated_data["provider"]
        )
        return Response(
            SubscriptionSerializer(sub).data,
            status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK,
        )

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        obj = self.get_object()  # 404 for another user's subscription
        reading.subscription_cancel(user_id=request.user.pk, subscription_id=obj.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProgressView(APIView):
    """The signed-in user's progress in one item."""

    @extend_schema(
        summary="My progress in an item",
        parameters=[ITEM_ID],
        responses={200: ReadingProgressSerializer, **error_responses(401, 404)},
    )
    def get(self, request: Request, item_id: int) -> Response:
        row = selectors.progress_for(user_id=request.user.pk, item_id=item_id)
        if row is None:
            raise NotFound("No progress recorded for this item.", details={"item_id": item_id})
        return Response(ReadingProgressSerializer(row).data)

    @extend_schema(
        summary="Record my progress in an item",
        parameters=[ITEM_ID],
        request=ProgressInputSerializer,
        responses={200: ReadingProgressSerializer, **error_responses(400, 401, 404)},
    )
    def put(self, request: Request, item_id: int) -> Response:
        data = ProgressInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reading.progress_update(user_id=request.user.pk, item_id=item_id, **data.validated_data)
        row = selectors.progress_for(user_id=request.user.pk, item_id=item_id)
        return Response(ReadingProgressSerializer(row).data)


class ContinueReadingPagination(NewestFirstCursorPagination):
    ordering = ("-updated_at", "-id")


@extend_schema(
    summary="Continue reading: started, not finished, latest first",
    responses={200: ReadingProgressSerializer(many=True), **error_responses(400, 401)},
)
class ContinueReadingView(generics.ListAPIView):
    serializer_class = ReadingProgressSerializer
    pagination_class = ContinueReadingPagination
    filter_backends: list = []

    def get_queryset(self):
        return selectors.continue_reading_list(user_id=self.request.user.pk)


class SavedPagination(NewestFirstCursorPagination):
    ordering = ("-created_at", "-id")


@extend_schema(
    summary="My saved items, latest first",
    responses={200: SavedItemSerializer(many=True), **error_responses(400, 401)},
)
class SavedListView(generics.ListAPIView):
    serializer_class = SavedItemSerializer
    pagination_class = SavedPagination
    filter_backends: list = []

    def get_queryset(self):
        return selectors.saved_item_list(user_id=self.request.user.pk)


class SavedItemView(APIView):
    """Whether the signed-in user saved an item; save it; unsave it."""

    @extend_schema(
        summary="Is this item saved?",
        parameters=[ITEM_ID],
        responses={200: SavedItemSerializer, **error_responses(401, 404)},
    )
    def get(self, request: Request, item_id: int) -> Response:
        saved = get_object_or_404(
            selectors.saved_item_list(user_id=request.user.pk), item_id=item_id
        )
        return Response(SavedItemSerializer(saved).data)

    @extend_schema(
        summary="Save an item (idempotent)",
        parameters=[ITEM_ID],
        request=None,
        responses={201: SavedItemSerializer, 200: SavedItemSerializer, **error_responses(401, 404)},
    )
    def put(self, request: Request, item_id: int) -> Response:
        _, created = reading.item_save(user_id=request.user.pk, item_id=item_id)
        saved = selectors.saved_item_list(user_id=request.user.pk).get(item_id=item_id)
        return Response(
            SavedItemSerializer(saved).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Unsave an item",
        parameters=[ITEM_ID],
        request=None,
        responses={204: None, **error_responses(401, 404)},
    )
    def delete(self, request: Request, item_id: int) -> Response:
        reading.item_unsave(user_id=request.user.pk, item_id=item_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
