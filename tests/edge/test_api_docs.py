"""/api/docs is served from our own static files (Swagger UI, vendored with its licence)."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def test_api_docs_load_nothing_from_another_site(client) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert sources and all(source.startswith("/") for source in sources), sources
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert "/api/openapi.json" in sources
    assert client.get("/api/openapi.json").json()["info"]["title"] == "ImageBooth"


def test_swagger_ui_ships_with_its_licence() -> None:
    folder = REPO_ROOT / "static" / "swagger-ui"
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert (folder / "NOTICE").is_file() and (folder / "swagger-ui-bundle.js.LICENSE.txt").is_file()
