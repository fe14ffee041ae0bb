"""Apps reach each other only through ``public.py`` and ``contracts.py``.

Walks every module of every app, and of ``bench/``, and checks each import of an app. The
dependency direction is checked too: ``reading_app`` is the content core and imports no
other app; the offline app ``ml_app`` depends on the serving apps and no serving app
depends on it (arrows run one way, ADR 0019). ``bench/`` may use any app, through its
facades only (and ``inbo``, which is not an app).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "reading_app",
    "features_app",
    "experience_app",
    "search_app",
    "monitoring",
    "ml_app",
    "experiments_app",
    "rules_app",
)
ALLOWED_MODULES = {"public", "contracts"}
# Which apps each app may depend on at all (through the facades). No serving app lists
# ml_app: the offline app reads the serving apps, never the reverse.
MAY_DEPEND_ON = {
    "reading_app": set(),
    "features_app": {"reading_app"},
    "search_app": {"reading_app"},
    # Business rules sit below the feed: experience_app applies them through rules_app.public.
    "experience_app": {"reading_app", "features_app", "rules_app"},
    "rules_app": {"reading_app", "features_app"},
    "monitoring": {
        "reading_app",
        "features_app",
        "experience_app",
        "search_app",
        "experiments_app",
    },
    "ml_app": {"reading_app", "features_app", "experience_app", "experiments_app"},
    # Experiments sit above the serving apps: they change the feed through experience_app's
    # treatment contract and read the served log, interactions, events and reading progress.
    "experiments_app": {"reading_app", "features_app", "experience_app"},
    "bench": set(APPS),
}
CHECKED = (*APPS, "bench")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if "." in node.module:
                found.append((node.lineno, node.module))
            else:  # "from reading_app import public" names the module it imports
                found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return found


def _violations(app: str, root: Path = ROOT) -> list[str]:
    problems = []
    for path in sorted((root / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for lineno, module in _imports(path):
            parts = module.split(".")
            other = parts[0]
            if other == app or other not in APPS:
                continue
            where = f"{path.relative_to(root)}:{lineno} imports {module}"
            if other not in MAY_DEPEND_ON[app]:
                problems.append(f"{where} ({app} must not depend on {other})")
            elif len(parts) == 1 or parts[1] not in ALLOWED_MODULES:
                problems.append(f"{where} (use {other}.public or {other}.contracts)")
    return problems


@pytest.mark.parametrize("app", CHECKED)
def test_app_imports_other_apps_only_through_facades(app):
    assert _violations(app) == []


def test_no_serving_app_may_depend_on_the_offline_app():
    assert all("ml_app" not in MAY_DEPEND_ON[app] for app in APPS if app != "ml_app")


def test_checker_catches_deep_imports_and_wrong_direction(tmp_path):
    (tmp_path / "search_app").mkdir()
    (tmp_path / "search_app" / "bad.py").write_text(
        "from reading_app.models import Item\n"
        "from experience_app import public\n"
        "from reading_app import public as ok\n"
        "import reading_app.selectors\n"
    )
    problems = _violations("search_app", root=tmp_path)
    assert len(problems) == 3
    assert "use reading_app.public" in problems[0]
    assert "must not depend on experience_app" in problems[1]
    assert "reading_app.selectors" in problems[2]


def test_checker_keeps_serving_apps_off_the_offline_app_and_bench_on_facades(tmp_path):
    (tmp_path / "experience_app").mkdir()
    (tmp_path / "experience_app" / "bad.py").write_text(
        "from ml_app import public\nfrom ml_app.evaluation import evaluate_ranking\n"
    )
    (tmp_path / "ml_app").mkdir()
    (tmp_path / "ml_app" / "ok.py").write_text(
        "from experience_app.public import rank\nfrom features_app import public\n"
        "from experience_app.ranking import rank as deep\n"
    )
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "mixed.py").write_text(
        "from inbo import keys\nfrom bench.common import say\nfrom tests import conftest\n"
        "from reading_app.public import categories_create_missing\nfrom ml_app import public\n"
        "from features_app import partitions\n"
    )
    serving = _violations("experience_app", root=tmp_path)
    assert len(serving) == 2
    assert all("must not depend on ml_app" in p for p in serving)
    assert _violations("ml_app", root=tmp_path) == [
        "ml_app/ok.py:3 imports experience_app.ranking (use experience_app.public or "
        "experience_app.contracts)"
    ]
    bench = _violations("bench", root=tmp_path)
    assert len(bench) == 1 and "features_app.partitions" in bench[0]
