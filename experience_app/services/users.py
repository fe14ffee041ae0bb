"""Bulk creation of accounts for imported and generated users (no one signs in with them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

BATCH_SIZE = 1000


@transaction.atomic
def users_ensure(
    usernames: Sequence[str], *, joined: Mapping[str, datetime] | None = None
) -> tuple[dict[str, int], int]:
    """Create the missing users with an unusable password (nobody signs in as them);
    returns ``(ids by username, how many were created)``.

    ``joined`` sets ``date_joined`` of new users; existing users are left as they are.
    """
    User = get_user_model()
    wanted = list(dict.fromkeys(usernames))
    existing = _ids(wanted)
    unusable = make_password(None)  # one "!…" value: no password ever matches it
    joined = joined or {}
    new = [
        User(username=name, password=unusable, **_joined(joined.get(name)))
        for name in wanted
        if name not in existing
    ]
    User._default_manager.bulk_create(new, batch_size=BATCH_SIZE, ignore_conflicts=True)
    ids = _ids(wanted)
    return ids, len(ids) - len(existing)


def _joined(at: datetime | None) -> dict[str, datetime]:
    return {"date_joined": at} if at is not None else {}


def _ids(usernames: Sequence[str]) -> dict[str, int]:
    User = get_user_model()
    found: dict[str, int] = {}
    for start in range(0, len(usernames), BATCH_SIZE):
        chunk = usernames[start : start + BATCH_SIZE]
        rows = User._default_manager.filter(username__in=chunk).values_list("username", "id")
        found.update((str(name), int(pk)) for name, pk in rows)
    return found
