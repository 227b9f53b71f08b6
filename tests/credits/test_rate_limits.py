"""Rate limits per IP and per user/account on job submission and on login/signup."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PASSWORD

MAX_TEST_SECONDS = 20  # what one of these tests takes at most, argon2 hashing included, on a loaded machine


@pytest.fixture
def limited_app(clean_state, env_override):
    def make(**limits: str) -> TestClient:
        env_override(**limits)
        from app.main import create_app

        # The limiter counts in windows aligned to the clock, and a hit just past a minute's end
        # sees the previous minute's hits weighted down (a sliding-window counter): a test that
        # straddles the boundary is let through where it expects a 429. Start in a fresh minute.
        left = 60 - time.time() % 60
        if left < MAX_TEST_SECONDS:
            time.sleep(left + 0.1)

        return TestClient(create_app(), raise_server_exceptions=False)

    return make


def assert_limited(response) -> None:
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0" and response.headers["X-RateLimit-Limit"]
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())


def test_signups_per_ip(limited_app) -> None:
    client = limited_app(RATE_LIMIT_AUTH_PER_IP="3/minute")
    answers = [client.post("/api/v1/auth/signup", json={"email": f"u{i}@example.com", "password": PASSWORD})
               for i in range(4)]
    assert [answer.status_code for answer in answers[:3]] == [201, 201, 201]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in answers[:3]] == ["2", "1", "0"]
    assert_limited(answers[3])


def test_logins_per_account_do_not_lock_out_other_accounts(limited_app) -> None:
    client = limited_app(RATE_LIMIT_AUTH_PER_ACCOUNT="2/minute")
    wrong = {"email": "victim@example.com", "password": "wrong password"}
    assert [client.post("/api/v1/auth/login", json=wrong).status_code for _ in range(2)] == [401, 401]
    assert_limited(client.post("/api/v1/auth/login", json=wrong | {"email": "VICTIM@example.com"}))
    assert client.post("/api/v1/auth/login", json=wrong | {"email": "other@example.com"}).status_code == 401
    client.cookies.set("imagebooth_csrf", "form-token")
    page = client.post("/login", data=wrong | {"csrf_token": "form-token"}, headers={"accept": "text/html"})
    assert page.status_code == 429 and page.headers["Retry-After"]


def test_job_submissions_per_user_and_per_ip(limited_app, accounts) -> None:
    client = limited_app(RATE_LIMIT_JOBS_PER_USER="2/minute", RATE_LIMIT_JOBS_PER_IP="3/minute")
    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    bearer = {"Authorization": f"Bearer {key}"}
    # counted before the body is even looked at: these are 422s, then 429
    answers = [client.post("/api/v1/generations", json={}, headers=bearer) for _ in range(3)]
    assert [answer.status_code for answer in answers[:2]] == [422, 422]
    assert_limited(answers[2])
    # the same user through the cookie is the same user
    assert_limited(client.post("/api/v1/generations", json={}, headers=accounts.csrf(client)))
    # another user from the same IP is stopped by the per-IP limit (3 counted so far... 4)
    other = TestClient(client.app, raise_server_exceptions=False)
    accounts.signup(other)
    assert_limited(other.post("/api/v1/generations", json={}, headers=accounts.csrf(other)))
    assert_limited(other.post("/api/v1/subjects/abc/finetunes", json={}, headers=accounts.csrf(other)))


def test_other_routes_are_not_limited(limited_app, accounts) -> None:
    client = limited_app(RATE_LIMIT_JOBS_PER_USER="1/minute", RATE_LIMIT_JOBS_PER_IP="1/minute")
    accounts.signup(client)
    assert all(client.get("/api/v1/me").status_code == 200 for _ in range(5))
    assert "X-RateLimit-Limit" not in client.get("/api/v1/me").headers
