"""Accounts: sign up, exchange credentials for a token (mobile), who am I."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from inbo.accounts.serializers import (
    RegisterSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
    UserSerializer,
)
from inbo.api.schema import error_responses
from inbo.errors import ApplicationError

User = get_user_model()


class InvalidCredentials(ApplicationError):
    status_code = 400
    code = "invalid_credentials"
    default_message = "Unable to sign in with these credentials."


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
        with transaction.atomic():
            user = User.objects.create_user(**data.validated_data)
            token = Token.objects.create(user=user)
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
        user = authenticate(request=request._request, **data.validated_data)
        if user is None or not user.is_active:
            raise InvalidCredentials()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key, "user": UserSerializer(user).data})


class MeView(APIView):
    @extend_schema(
        summary="The signed-in user",
        responses={200: UserSerializer, **error_responses(401)},
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)
