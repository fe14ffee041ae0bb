"""`make run` prints every URL of the README's table, and nothing the table does not list."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"http://[^\s,|)`]+")
# scripts/run's defaults, as the README's table shows them.
DEFAULTS = {
    "$BASE": "http://$HOST:$PORT",
    "$HOST": "127.0.0.1",
    "$PORT": "8000",
    "$WORKER_METRICS_PORT": "9808",
    "${DEMO_USER_PASSWORD:-inbo-demo}": "inbo-demo",
}


def readme_table_urls() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| what | where |", 1)[1].split("\n\n", 1)[0]
    return set(URL.findall(table))


def banner_urls() -> set[str]:
    script = (ROOT / "scripts" / "run").read_text()
    banner = script.split("cat <<MSG", 1)[1].split("\nMSG", 1)[0]
    for variable, value in DEFAULTS.items():  # $BASE first: it holds $HOST and $PORT
        banner = banner.replace(variable, value)
    assert "$" not in banner, banner
    return set(URL.findall(banner))


def test_make_run_prints_every_url_of_the_readme_table_and_no_other():
    table = readme_table_urls()
    assert "http://127.0.0.1:8000/api/docs/" in table
    assert banner_urls() == table


def test_the_banner_names_the_demo_login():
    script = (ROOT / "scripts" / "run").read_text()
    banner = script.split("cat <<MSG", 1)[1].split("\nMSG", 1)[0]
    assert "admin / ${DEMO_USER_PASSWORD:-inbo-demo}" in banner
