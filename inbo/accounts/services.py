"""Account writes: sign-up and API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from inbo.errors import ApplicationError, InvalidInput


class InvalidCredentials(ApplicationError):
    status_code = 400
    code = "invalid_credentials"
    default_message = "Unable to sign in with these credentials."


def user_register(*, username: str, email: str, password: str) -> tuple[AbstractBaseUser, Token]:
    """Create an account and its API token; a username taken meanwhile is invalid input."""
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=username, email=email, password=password
            )
            token = Token.objects.create(user=user)
    except IntegrityError:  # a concurrent sign-up took the username after validation
        raise InvalidInput(
            "Invalid input in: username.", details={"username": ["This username is taken."]}
        ) from None
    return user, token


def token_obtain(
    *, request: HttpRequest | None, username: str, password: str
) -> tuple[AbstractBaseUser, Token]:
    """The API token of the user these credentials belong to (created on first use)."""
    user = authenticate(request=request, username=username, password=password)
    if user is None or not user.is_active:
        raise InvalidCredentials()
    token, _ = Token.objects.get_or_create(user=user)
    return user, token
