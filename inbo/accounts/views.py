"""Accounts: sign up, exchange credentials for a token (mobile), who am I."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from inbo.accounts import services
from inbo.accounts.serializers import (
    RegisterSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
    UserSerializer,
)
from inbo.api.schema import error_responses


class RegisterView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Create an account",
        request=RegisterSerializer,
        responses={201: TokenResponseSerializer, **error_responses(400, 429)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.user_register(**data.validated_data)
        return Response(
            {"token": token.key, "user": UserSerializer(user).data}, status=status.HTTP_201_CREATED
        )


class TokenView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Get an API token (mobile clients)",
        request=TokenRequestSerializer,
        responses={200: TokenResponseSerializer, **error_responses(400, 429)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.token_obtain(request=request._request, **data.validated_data)
        return Response({"token": token.key, "user": UserSerializer(user).data})


class MeView(APIView):
    @extend_schema(
        summary="The signed-in user",
        responses={200: UserSerializer, **error_responses(401)},
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)
