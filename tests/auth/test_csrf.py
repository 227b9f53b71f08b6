"""CSRF: unsafe requests authenticated by the cookie must echo the CSRF token."""

from __future__ import annotations


def test_cookie_post_without_token_is_403(client, accounts) -> None:
    accounts.signup(client)
    response = client.post("/api/v1/api-keys", json={"name": "k"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "csrf_failed"


def test_cookie_post_with_wrong_token_is_403(client, accounts) -> None:
    accounts.signup(client)
    response = client.post("/api/v1/api-keys", json={"name": "k"}, headers={"X-CSRF-Token": "forged"})
    assert response.status_code == 403


def test_cookie_delete_needs_token_too(client, accounts) -> None:
    accounts.signup(client)
    created = accounts.api_key(client)
    assert client.delete(f"/api/v1/api-keys/{created['id']}").status_code == 403
    assert client.get("/api/v1/api-keys").json()[0]["revoked_at"] is None


def test_signup_response_carries_the_token_for_scripts(client) -> None:
    body = client.post("/api/v1/auth/signup", json={"email": "s@example.com", "password": "long enough"}).json()
    assert body["csrf_token"] == client.cookies["imagebooth_csrf"]


def test_login_rotates_the_token(client, make_client, accounts) -> None:
    accounts.signup(client, "r@example.com")
    before = client.cookies["imagebooth_csrf"]
    client.post("/api/v1/auth/login", json={"email": "r@example.com", "password": "correct horse battery"})
    assert client.cookies["imagebooth_csrf"] != before


def test_form_post_without_token_is_rejected(client) -> None:
    client.get("/login")
    response = client.post("/login", data={"email": "x@example.com", "password": "whatever1", "csrf_token": "forged"},
                           headers={"accept": "text/html"})
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert "did not come from this site" in response.text
