"""API keys: shown once, stored hashed, revocable, owner-scoped."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from app.auth.models import ApiKey


def test_key_is_shown_once_and_stored_as_sha256(client, accounts, db) -> None:
    accounts.signup(client)
    created = accounts.api_key(client, "laptop")
    assert created["key"].startswith("ib_") and len(created["key"]) > 40
    stored = db.scalar(select(ApiKey))
    assert stored.key_hash == hashlib.sha256(created["key"].encode()).hexdigest()
    listing = client.get("/api/v1/api-keys").json()
    assert [key["id"] for key in listing] == [created["id"]]
    assert "key" not in listing[0] and listing[0]["prefix"] == created["key"][:11]


def test_bearer_key_authenticates_without_cookies(client, make_client, accounts) -> None:
    me = accounts.signup(client)
    key = accounts.api_key(client)["key"]
    script = make_client()
    response = script.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.json()["id"] == me["id"]
    # Bearer calls carry no ambient credentials, so unsafe methods need no CSRF token.
    second = script.post("/api/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
    assert second.status_code == 403 and second.json()["error"]["code"] == "session_required"


def test_missing_or_unknown_key_is_401(make_client) -> None:
    script = make_client()
    assert script.get("/api/v1/me").status_code == 401
    unknown = script.get("/api/v1/me", headers={"Authorization": "Bearer ib_not-a-real-key"})
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "not_authenticated"
    malformed = script.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert malformed.status_code == 401


def test_revoked_key_is_401(client, make_client, accounts) -> None:
    accounts.signup(client)
    created = accounts.api_key(client)
    response = client.delete(f"/api/v1/api-keys/{created['id']}", headers=accounts.csrf(client))
    assert response.status_code == 204
    script = make_client()
    assert script.get("/api/v1/me", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 401
    assert client.get("/api/v1/api-keys").json()[0]["revoked_at"] is not None


def test_bad_key_wins_over_a_good_cookie(client, accounts) -> None:
    accounts.signup(client)
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer ib_wrong"}).status_code == 401


def test_another_users_key_is_404_and_untouched(make_client, accounts) -> None:
    alice, mallory = make_client(), make_client()
    accounts.signup(alice)
    accounts.signup(mallory)
    alices_key = accounts.api_key(alice)
    response = mallory.delete(f"/api/v1/api-keys/{alices_key['id']}", headers=accounts.csrf(mallory))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert mallory.get("/api/v1/api-keys").json() == []
    assert alice.get("/api/v1/me", headers={"Authorization": f"Bearer {alices_key['key']}"}).status_code == 200


def test_unknown_key_id_is_404(client, accounts) -> None:
    accounts.signup(client)
    assert client.delete("/api/v1/api-keys/nope", headers=accounts.csrf(client)).status_code == 404


def test_last_used_is_recorded(client, make_client, accounts, db) -> None:
    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    make_client().get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert db.scalar(select(ApiKey)).last_used_at is not None
