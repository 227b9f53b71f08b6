"""/healthz and /readyz, including each dependency failing on its own."""

from __future__ import annotations

import pytest


def test_healthz(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_every_configured_dependency(client, backend) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    expected = {"database": "ok", "schema": "ok", "broker": "ok"} | ({"redis": "ok"} if backend == "real" else {})
    assert response.json()["checks"] == expected


def _client_with(env_override, **settings):
    from fastapi.testclient import TestClient

    from app.main import create_app

    env_override(**settings)
    return TestClient(create_app(), raise_server_exceptions=False)


def test_readyz_names_an_unreachable_broker(clean_state, env_override, backend) -> None:
    if backend == "real":
        override = {"BROKER_URL": "redis://127.0.0.1:1/0"}
    else:
        override = {"BROKER_URL": "filesystem://", "DATA_DIR": "/proc/imagebooth-cannot-write"}
        # The database keeps working: only the broker's folder is unusable.
        from app.config import get_settings

        override["DATABASE_URL"] = get_settings().database_url
    with _client_with(env_override, **override) as browser:
        response = browser.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["failing"] == ["broker"]


def test_readyz_names_an_unreachable_redis(clean_state, env_override, backend) -> None:
    if backend != "real":
        pytest.skip("embedded mode has no Redis to lose")
    from app.config import get_settings

    broker = get_settings().broker_url
    with _client_with(env_override, REDIS_URL="redis://127.0.0.1:1/0", BROKER_URL=broker) as browser:
        response = browser.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["failing"] == ["redis"]
