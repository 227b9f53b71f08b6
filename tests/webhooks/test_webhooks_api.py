"""POST/GET/DELETE /api/v1/webhooks and the deliveries route: shapes, owners, refusals."""

from __future__ import annotations

import pytest

PUBLIC_URL = "https://93.184.215.14/hooks"


def _create(client, accounts, url: str, **headers: str):
    return client.post("/api/v1/webhooks", json={"url": url}, headers={**accounts.csrf(client), **headers})


def test_register_list_and_delete(client, accounts, receiver) -> None:
    accounts.signup(client)
    created = _create(client, accounts, receiver.url)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["url"] == receiver.url and hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
    assert "generation.succeeded" in hook["events"] and "finetune.canceled" in hook["events"]
    listed = client.get("/api/v1/webhooks").json()
    assert [item["id"] for item in listed] == [hook["id"]]
    assert "secret" not in listed[0]  # shown once
    assert client.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json() == {"items": []}
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=accounts.csrf(client)).status_code == 204
    assert client.get("/api/v1/webhooks").json() == []
    assert client.get(f"/api/v1/webhooks/{hook['id']}/deliveries").status_code == 404


def test_another_users_webhook_is_not_found(client, make_client, accounts, receiver) -> None:
    accounts.signup(client)
    hook = _create(client, accounts, receiver.url).json()
    other = make_client()
    accounts.signup(other)
    assert other.get(f"/api/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    assert other.delete(f"/api/v1/webhooks/{hook['id']}", headers=accounts.csrf(other)).status_code == 404
    assert other.get("/api/v1/webhooks").json() == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "https://me:secret@example.com/", "http://no-such-host.invalid/"])
def test_urls_that_cannot_be_called_are_a_422_naming_the_field(client, accounts, url) -> None:
    accounts.signup(client)
    response = _create(client, accounts, url)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "url"


def test_production_refuses_private_targets_and_takes_public_ones(client, accounts, env_override) -> None:
    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    env_override(ENV="production", SECRET_KEY="x" * 40)
    bearer = {"Authorization": f"Bearer {key}"}
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://[::1]/"):
        refused = client.post("/api/v1/webhooks", json={"url": url}, headers=bearer)
        assert refused.status_code == 422 and "public addresses only" in refused.json()["error"]["message"], url
    accepted = client.post("/api/v1/webhooks", json={"url": PUBLIC_URL}, headers=bearer)
    assert accepted.status_code == 201, accepted.text


def test_an_account_has_a_limited_number_of_webhooks(client, accounts, env_override, receiver) -> None:
    env_override(MAX_WEBHOOKS_PER_USER="2")
    accounts.signup(client)
    assert [_create(client, accounts, receiver.url).status_code for _ in range(3)] == [201, 201, 409]
    assert client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["x"]},
                       headers=accounts.csrf(client)).status_code == 422


def test_webhooks_need_an_account(client) -> None:
    assert client.get("/api/v1/webhooks").status_code == 401
    assert client.post("/api/v1/webhooks", json={"url": PUBLIC_URL}).status_code == 401
