"""Every Redis key INBO writes is built here, next to its TTL.

Form: ``inbo:<app>:<thing>:<id>:v<N>``. Bump ``vN`` when the shape of a value changes, so
old and new code never read each other's values. No other module spells a key literal.
"""

from __future__ import annotations

PREFIX = "inbo"

# Beat writes its heartbeat every 30 s; readiness calls beat stalled after this long.
BEAT_HEARTBEAT_TTL_SECONDS = 300


def _key(app: str, thing: str, ident: str | int, version: int) -> str:
    return f"{PREFIX}:{app}:{thing}:{ident}:v{version}"


def beat_heartbeat() -> str:
    """Unix time of beat's last heartbeat (string). TTL: ``BEAT_HEARTBEAT_TTL_SECONDS``."""
    return _key("monitoring", "beat_heartbeat", "global", 1)
