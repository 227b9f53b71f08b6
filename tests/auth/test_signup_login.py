"""Signup, login, logout and the session cookie (API.md, Auth)."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.models import User


def test_signup_creates_account_and_logs_in(client, db) -> None:
    response = client.post("/api/v1/auth/signup", json={"email": "Ada@Example.com", "password": "long enough"})
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com" and body["id"]
    assert client.get("/api/v1/me").json()["email"] == "ada@example.com"
    user = db.scalar(select(User))
    assert user.password_hash.startswith("$argon2id$")  # never the password itself
    assert "long enough" not in user.password_hash


def test_duplicate_email_is_409_whatever_the_case(client, accounts) -> None:
    accounts.signup(client, "taken@example.com")
    response = client.post("/api/v1/auth/signup", json={"email": "TAKEN@example.com", "password": "another pw"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


def test_malformed_email_is_422_naming_the_field(client) -> None:
    response = client.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": "long enough"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("email:")
    assert [field["field"] for field in error["fields"]] == ["email"]


def test_short_password_is_422_naming_the_field(client) -> None:
    response = client.post("/api/v1/auth/signup", json={"email": "a@example.com", "password": "7chars!"})
    assert response.status_code == 422
    assert "password" in response.json()["error"]["message"]
    assert "8 characters" in response.json()["error"]["message"]


def test_missing_fields_and_bad_json_are_422_not_500(client) -> None:
    missing = client.post("/api/v1/auth/signup", json={"email": "a@example.com"})
    assert missing.status_code == 422 and "password: is required" in missing.json()["error"]["message"]
    broken = client.post("/api/v1/auth/signup", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["error"]["message"]


def test_login_sets_session(client, make_client, accounts) -> None:
    accounts.signup(client, "lee@example.com")
    browser = make_client()
    response = browser.post("/api/v1/auth/login", json={"email": "lee@example.com", "password": "correct horse battery"})
    assert response.status_code == 200
    assert response.json()["email"] == "lee@example.com" and response.json()["csrf_token"]
    assert browser.get("/api/v1/me").status_code == 200


def test_wrong_password_and_unknown_email_give_the_same_401(client, make_client, accounts) -> None:
    accounts.signup(client, "lee@example.com")
    browser = make_client()
    wrong_password = browser.post("/api/v1/auth/login", json={"email": "lee@example.com", "password": "not it at all"})
    unknown_email = browser.post("/api/v1/auth/login", json={"email": "who@example.com", "password": "not it at all"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["error"]["code"] == "invalid_credentials"
    assert "imagebooth_session" not in browser.cookies


def test_logout_ends_the_session(client, accounts) -> None:
    accounts.signup(client)
    response = client.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_session_cookie_flags(client) -> None:
    response = client.post("/api/v1/auth/signup", json={"email": "c@example.com", "password": "long enough"})
    session_cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("imagebooth_session="))
    flags = session_cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags
    assert "secure" not in flags  # development over plain http


def test_session_cookie_is_secure_in_production(clean_state, env_override) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    env_override(ENV="production", SECRET_KEY="p" * 48)
    with TestClient(create_app(), base_url="https://testserver") as browser:
        response = browser.post("/api/v1/auth/signup", json={"email": "p@example.com", "password": "long enough"})
    assert response.status_code == 201
    for cookie in response.headers.get_list("set-cookie"):
        assert "secure" in cookie.lower()


def test_tampered_session_cookie_is_401(client, make_client, accounts) -> None:
    accounts.signup(client)
    value = client.cookies["imagebooth_session"]
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    other = make_client()
    assert other.get("/api/v1/me", headers={"cookie": f"imagebooth_session={value}"}).status_code == 200
    assert other.get("/api/v1/me", headers={"cookie": f"imagebooth_session={tampered}"}).status_code == 401


def test_no_credentials_is_401(client) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
