"""Assertions shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterable


def assert_error(response, status: int, code: str, fields: Iterable[str] | None = None) -> dict:
    """The response is ``status`` with the one error shape; ``fields`` are named in details."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    for field in fields or ():
        assert field in error["details"], (field, error["details"])
    return error
