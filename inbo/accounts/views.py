"""Accounts: sign up, exchange credentials for a token (mobile), sign out, who am I."""

from __future__ import annotations

from django.contrib.auth import get_user_model, logout
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inbo.accounts import services
from inbo.accounts.authentication import token_expires_at
from inbo.accounts.serializers import (
    RegisterSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
    UserSerializer,
)
from inbo.api.schema import error_responses
from inbo.api.throttling import AddressRateThrottle


def _token_body(user: object, token: Token) -> dict:
    body = {"token": token.key, "expires_at": token_expires_at(token), "user": user}
    return TokenResponseSerializer(body).data


class RegisterView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Create an account",
        description="A username or email already in use is one `409 account_exists` that does "
        "not say which of the two: sign-up does not reveal who has an account. Limited per "
        "client address (THROTTLE_RATE_AUTH, shared with `/auth/token/`).",
        request=RegisterSerializer,
        responses={201: TokenResponseSerializer, **error_responses(400, 409, 429)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.user_register(**data.validated_data)
        return Response(_token_body(user, token), status=status.HTTP_201_CREATED)


class TokenView(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Get an API token (mobile clients)",
        description="Returns the user's current token while it is valid, a new one once it "
        "expired (`expires_at`) or was revoked. Limited per client address "
        "(THROTTLE_RATE_AUTH).",
        request=TokenRequestSerializer,
        responses={200: TokenResponseSerializer, **error_responses(400, 429)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.token_obtain(request=request._request, **data.validated_data)
        return Response(_token_body(user, token))


class LogoutView(APIView):
    @extend_schema(
        summary="Sign out this client",
        description="Revokes the API token the request was made with (or ends the browser "
        "session it came with). Further requests with it are 401.",
        request=None,
        responses={204: None, **error_responses(401)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, Token):
            services.token_revoke(token=request.auth)
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    @extend_schema(
        summary="Sign out everywhere",
        description="Revokes every API token of the signed-in user and ends every browser "
        "session signed in as them. Other users are not affected.",
        request=None,
        responses={204: None, **error_responses(401)},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        assert request.user.pk is not None  # IsAuthenticated
        services.user_sign_out_everywhere(user_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(
        summary="The signed-in user",
        responses={200: UserSerializer, **error_responses(401)},
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        # The authenticated user carries only what authentication needs (a cached token
        # defers the rest): one query for the fields shown.
        user = get_user_model().objects.get(pk=request.user.pk)
        return Response(UserSerializer(user).data)
