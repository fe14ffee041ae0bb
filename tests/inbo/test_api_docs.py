"""The API docs page works offline: Swagger UI's assets come from the app, pinned."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)\"""")


def test_api_docs_reference_only_static_files_the_app_serves():
    client = Client()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assets = ASSET.findall(page)
    assert len(assets) >= 4  # favicon, stylesheet, bundle, standalone preset
    assert not re.search(r"https?://|//[a-z]", page), "the page names an outside host"
    assert "swagger-ui-bundle.js" in " ".join(assets)
    for url in assets:
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
        served = client.get(url)
        assert served.status_code == 200, url
        body = b"".join(served.streaming_content)
        assert len(body) > 0, url
    assert '"validatorUrl": null' in page  # no badge fetched from validator.swagger.io
