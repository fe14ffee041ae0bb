"""Account writes: sign-up, API tokens (issue, expiry, revocation)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from inbo.errors import ApplicationError, Conflict


class InvalidCredentials(ApplicationError):
    status_code = 400
    code = "invalid_credentials"
    default_message = "Unable to sign in with these credentials."


class AccountExists(Conflict):
    """Sign-up with a username or an email already in use. Which one is not said: a sign-up
    form must not tell a stranger that a given username (or address) has an account."""

    code = "account_exists"
    default_message = (
        "An account cannot be created with this username and email. "
        "Sign in, or choose another username or email."
    )


def user_register(*, username: str, email: str, password: str) -> tuple[AbstractBaseUser, Token]:
    """Create an account and its API token; a username or email in use is one generic 409."""
    users = get_user_model().objects
    if users.filter(Q(username__iexact=username) | Q(email__iexact=email)).exists():
        raise AccountExists()
    try:
        with transaction.atomic():
            user = users.create_user(username=username, email=email, password=password)
            token = Token.objects.create(user=user)
    except IntegrityError:  # a concurrent sign-up took the username after the check
        raise AccountExists() from None
    return user, token


def token_obtain(
    *, request: HttpRequest | None, username: str, password: str
) -> tuple[AbstractBaseUser, Token]:
    """The user's API token: the current one while it is valid, else a new one."""
    user = authenticate(request=request, username=username, password=password)
    if user is None or not user.is_active:
        raise InvalidCredentials()
    hours = int(settings.TOKEN_TTL_HOURS)
    with transaction.atomic():
        if hours > 0:
            cutoff = timezone.now() - timedelta(hours=hours)
            Token.objects.filter(user=user, created__lte=cutoff).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return user, token


def token_revoke(*, token: Token) -> None:
    """Sign one API token out (``POST /auth/logout/``)."""
    Token.objects.filter(pk=token.pk).delete()


def user_sign_out_everywhere(*, user_id: int) -> tuple[int, int]:
    """Revoke every API token of the user and end every browser session (admin, browsable
    API) signed in as them. Returns (tokens revoked, sessions ended)."""
    tokens, _ = Token.objects.filter(user_id=user_id).delete()
    # Sessions store the user id inside their signed payload, so each live one is decoded.
    # Only staff and browsable-API users have sessions: few rows.
    ended = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id)
    ]
    sessions, _ = Session.objects.filter(pk__in=ended).delete()
    return tokens, sessions
