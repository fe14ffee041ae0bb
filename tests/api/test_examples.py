"""Every operation's examples exist and are valid against the schema they illustrate (DOC-003)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from inbo.api.examples import EXAMPLES, _key

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from rest_framework.test import APIClient

    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict[str, Any]):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def _json(container: dict[str, Any]) -> dict[str, Any] | None:
    return container.get("content", {}).get("application/json")


def _to_json_schema(node: Any, components: dict[str, Any]) -> Any:
    """OpenAPI 3.0 to JSON Schema: refs inlined, ``nullable`` as a null alternative, and
    objects closed, so that an example with a stale or misspelt field fails too."""
    if isinstance(node, list):
        return [_to_json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _to_json_schema(components[name], components)
    out = {k: _to_json_schema(v, components) for k, v in node.items() if k != "nullable"}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


# jsonschema checks date-time and uri only with optional packages; these are the API's rules.
FORMATS = copy.deepcopy(jsonschema.Draft202012Validator.FORMAT_CHECKER)


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return "T" in value and parsed.tzinfo is not None


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme in ("http", "https") and parts.netloc)


def _validate(value: Any, schema_node: dict[str, Any], schema: dict[str, Any]) -> None:
    json_schema = _to_json_schema(schema_node, schema["components"]["schemas"])
    jsonschema.Draft202012Validator(json_schema, format_checker=FORMATS).validate(value)


def test_every_operation_has_request_success_and_error_examples(schema):
    missing = []
    for label, operation in _operations(schema):
        body = _json(operation.get("requestBody", {}))
        if body is not None and not body.get("examples"):
            missing.append(f"{label}: request body")
        responses = operation["responses"]
        successes = [r for s, r in responses.items() if s.startswith("2") and _json(r)]
        if successes and not any(_json(r).get("examples") for r in successes):
            missing.append(f"{label}: success response")
        errors = {s: r for s, r in responses.items() if s[0] in "45" and _json(r)}
        if not errors:
            missing.append(f"{label}: no documented error response")
        missing += [
            f"{label}: {status} response"
            for status, r in errors.items()
            if not _json(r).get("examples")
        ]
    assert not missing, "\n".join(missing)


def test_every_example_is_valid_against_its_schema(schema):
    checked = 0
    invalid = []
    for label, operation in _operations(schema):
        containers = [("request", operation.get("requestBody", {}))]
        containers += [(status, r) for status, r in operation["responses"].items()]
        for where, container in containers:
            content = _json(container) or {}
            for name, example in content.get("examples", {}).items():
                checked += 1
                try:
                    _validate(example["value"], content["schema"], schema)
                except jsonschema.ValidationError as exc:
                    path = "/".join(str(p) for p in exc.absolute_path)
                    invalid.append(f"{label} {where} {name}: {exc.message} at /{path}")
    assert not invalid, "\n".join(invalid)
    assert checked > 60


def test_every_written_example_lands_in_the_schema(schema):
    """An example naming an operation or a status the schema lacks would be dropped silently."""
    by_id = {operation["operationId"]: operation for _, operation in _operations(schema)}
    assert set(EXAMPLES) <= set(by_id), set(EXAMPLES) - set(by_id)
    assert set(by_id) <= set(EXAMPLES), f"no examples entry for {set(by_id) - set(EXAMPLES)}"
    lost = []
    for operation_id, examples in EXAMPLES.items():
        operation = by_id[operation_id]
        for example in examples:
            if example.request_only:
                targets = [operation.get("requestBody", {})]
            else:
                targets = [operation["responses"].get(s, {}) for s in example.status_codes]
            for target in targets:
                if _key(example.name) not in (_json(target) or {}).get("examples", {}):
                    lost.append(f"{operation_id}: {example.name} {example.status_codes or ''}")
    assert not lost, "\n".join(lost)


COOKBOOK = Path(__file__).resolve().parents[2] / "docs" / "API_COOKBOOK.md"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_cookbook_runs_top_to_bottom_against_the_live_server(
    http_server, catalog, settings, tmp_path
):
    """Every bash block of docs/API_COOKBOOK.md, in order, as one script: no error answer."""
    settings.EXPERIENCE_SECTION_PAGE_SIZE = 3  # so that a section of the small catalog pages
    blocks = re.findall(r"```bash\n(.*?)```", COOKBOOK.read_text(), flags=re.S)
    script = "\n".join(b for b in blocks if "examples/inbo_client.py" not in b)
    script = script.replace("http://127.0.0.1:8000", http_server.url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert '"error"' not in done.stdout, done.stdout
    assert '"duplicates": 2' in done.stdout.replace('"duplicates":2', '"duplicates": 2')
    assert '"recorded":true' in done.stdout.replace(" ", "")
