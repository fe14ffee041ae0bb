"""Every Redis key is spelled in ``inbo/keys.py``; broker, cache and state are apart.

Walks every module of the project's packages and looks at each string constant (f-string
parts included) for one that starts with ``inbo:``: only ``inbo/keys.py`` may build keys.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

from inbo import keys

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "inbo",
    "reading_app",
    "features_app",
    "experience_app",
    "search_app",
    "monitoring",
    "experiments_app",
    "rules_app",
)
KEYS_MODULE = Path("inbo/keys.py")


def _key_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        # f-string parts are Constant nodes inside JoinedStr, so ast.walk reaches them too.
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.lstrip().startswith(f"{keys.PREFIX}:")
        ):
            found.append((node.lineno, node.value))
    return found


def _violations(root: Path = ROOT) -> list[str]:
    problems = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if relative == KEYS_MODULE:
                continue
            problems.extend(
                f"{relative}:{lineno} spells {value!r} (build it in inbo/keys.py)"
                for lineno, value in _key_literals(path)
            )
    return problems


def test_no_module_but_inbo_keys_spells_a_redis_key():
    assert _violations() == []


def test_checker_finds_plain_and_f_string_literals(tmp_path):
    (tmp_path / "inbo").mkdir()
    (tmp_path / "inbo" / "keys.py").write_text('KEY = "inbo:features:x:1:v1"\n')
    (tmp_path / "features_app").mkdir()
    (tmp_path / "features_app" / "bad.py").write_text(
        'LOCK = "inbo:features:lock:global:v1"\n'
        'def key(i):\n    return f"inbo:features:item:{i}:v1"\n'
        'OK = "not inbo:features"\n'
        "from inbo import keys\nGOOD = keys.dirty_items()\n"
    )
    problems = _violations(root=tmp_path)
    assert [p.split(" spells ")[0] for p in problems] == [
        "features_app/bad.py:1",
        "features_app/bad.py:3",
    ]


def test_every_builder_follows_the_naming_convention():
    built = [
        keys.beat_heartbeat(),
        keys.item_counts(7),
        keys.item_daily(20000, 130),
        keys.item_daily_legacy(20000),
        keys.decayed("clicks", 6.0, 3),
        keys.item_first_seen(),
        keys.user_counts(7),
        keys.user_affinity(7),
        keys.user_seen(7),
        keys.feed(7),
        keys.feed_snapshot(7, "abc"),
        keys.served_buffer(),
        keys.served_flush_lock(),
        keys.feed_cache_stats(),
        keys.evaluation_lock(),
        keys.dirty_items(),
        keys.dirty_items_syncing(),
        keys.features_lock("sync"),
        keys.features_job_status("sync"),
        keys.search_last_indexed(),
        keys.cache_namespace_version("item_cards"),
        keys.cache_entry("item_cards", "a1b2c3", 42),
    ]
    for key in built:
        prefix, app, thing, ident, version = key.split(":")
        assert prefix == "inbo", key
        assert app in {"features", "experience", "monitoring", "search", "cache"}, key
        assert thing and ident, key
        assert version.startswith("v") and version[1:].isdigit(), key
    assert len(set(built)) == len(built)


def test_cache_prefix_comes_from_inbo_keys():
    assert settings.CACHES["default"]["KEY_PREFIX"] == keys.CACHE_KEY_PREFIX == "inbo:cache"


def _database(url: str) -> tuple[str, str]:
    """(server, database) of a Redis URL."""
    server, _, db = url.split("?")[0].rpartition("/")
    return server, db or "0"


def test_broker_cache_and_state_use_different_databases():
    roles = {
        "broker": settings.CELERY_BROKER_URL,
        "cache": settings.CACHES["default"]["LOCATION"],
        "state": settings.REDIS_STATE_URL,
    }
    assert roles["cache"] == settings.REDIS_CACHE_URL
    assert len({_database(url) for url in roles.values()}) == 3, roles
