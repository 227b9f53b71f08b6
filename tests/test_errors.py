"""Errors: one JSON shape for the API, 413 for oversized bodies, 503 when the database is down."""

from __future__ import annotations

import pytest


def test_unknown_api_route_is_json_404(client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client) -> None:
    response = client.delete("/api/v1/me")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_oversized_json_body_is_413(client) -> None:
    body = b'{"email": "a@example.com", "password": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/auth/signup", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_oversized_body_without_content_length_is_413(client) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = client.post("/api/v1/auth/signup", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def _unreachable_database_url(backend: str) -> str:
    if backend == "real":
        return "postgresql+psycopg://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    return "sqlite:////proc/imagebooth-no-such-dir/db.sqlite"  # a folder that cannot exist


@pytest.fixture
def database_down(clean_state, env_override, backend):
    from fastapi.testclient import TestClient

    from app.main import create_app

    env_override(DATABASE_URL=_unreachable_database_url(backend))
    with TestClient(create_app(), raise_server_exceptions=False) as browser:
        yield browser


def test_database_down_makes_readyz_503_naming_it(database_down) -> None:
    response = database_down.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["failing"] == ["database"] and "database" in error["message"]


def test_database_down_makes_api_calls_503_without_a_trace(database_down) -> None:
    for response in (
        database_down.post("/api/v1/auth/signup", json={"email": "d@example.com", "password": "long enough"}),
        database_down.get("/api/v1/me", headers={"Authorization": "Bearer ib_whatever"}),
    ):
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "service_unavailable" and "database" in error["message"]
        assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower()


def test_healthz_stays_up_when_the_database_is_down(database_down) -> None:
    assert database_down.get("/healthz").status_code == 200


def test_unexpected_error_is_a_generic_500(client) -> None:
    def explode() -> None:
        raise RuntimeError("secret internals")

    client.app.add_api_route("/api/v1/test-explode", explode)
    response = client.get("/api/v1/test-explode")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in response.text
