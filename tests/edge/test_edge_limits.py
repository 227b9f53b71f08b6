"""Limits nobody may slip past: forwarded headers, login limits whatever the content type,
upload limits, the rate limiter with Redis down, session expiry, the multipart total."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PASSWORD, REPO_ROOT
from tests.personalization.upload_samples import files, good_photos

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def app_with(clean_state, env_override):
    def make(peer: str = "203.0.113.7", **settings: str) -> TestClient:
        env_override(**settings)
        from app.main import create_app

        return TestClient(create_app(), raise_server_exceptions=False, client=(peer, 40000))

    return make


def signup(client: TestClient, number: int, **headers: str):
    return client.post("/api/v1/auth/signup", json={"email": f"u{number}@example.com", "password": PASSWORD},
                       headers=headers)


# --- forwarded headers ------------------------------------------------------------------------
def test_forwarded_for_is_ignored_without_trusted_proxies(app_with) -> None:
    client = app_with(RATE_LIMIT_AUTH_PER_IP="2/hour")
    answers = [signup(client, i, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)]
    assert answers == [201, 201, 429]  # rotating the header changes nothing


def test_forwarded_for_names_the_client_behind_a_trusted_proxy(app_with) -> None:
    client = app_with(peer="10.0.0.5", RATE_LIMIT_AUTH_PER_IP="2/hour", TRUSTED_PROXIES="10.0.0.0/8")
    rotating = [signup(client, i, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)]
    assert rotating == [201, 201, 201]  # three different clients
    same = [signup(client, 10 + i, **{"X-Forwarded-For": "198.51.100.99"}).status_code for i in range(3)]
    assert same == [201, 201, 429]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(app_with) -> None:
    client = app_with(peer="192.0.2.1", RATE_LIMIT_AUTH_PER_IP="2/hour", TRUSTED_PROXIES="10.0.0.5")
    answers = [signup(client, i, **{"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(3)]
    assert answers == [201, 201, 429]


def test_trusted_proxies_setting_is_validated(env_override) -> None:
    from pydantic import ValidationError

    from app.config import Settings

    env_override(TRUSTED_PROXIES="")
    assert Settings().trusted_proxies == []
    env_override(TRUSTED_PROXIES='["10.0.0.5", "172.16.0.0/12"]')
    assert Settings().trusted_proxies == ["10.0.0.5", "172.16.0.0/12"]
    env_override(TRUSTED_PROXIES="*")
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings()


def test_images_trust_no_proxy_by_default() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "--forwarded-allow-ips" not in dockerfile and "--no-proxy-headers" in dockerfile
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "IMAGEBOOTH_TRUSTED_PROXIES: ${IMAGEBOOTH_TRUSTED_PROXIES:-}" in compose
    assert '"8000:8000"' not in compose  # not published on every interface


# --- login limits, whatever the content type ---------------------------------------------------
LOGIN_SPELLINGS = {
    "JSON": lambda client, body: client.post("/api/v1/auth/login", json=body),
    "form": lambda client, body: client.post("/login", data=body | {"csrf_token": "t"}),
    "Form in capitals": lambda client, body: client.post(
        "/login", content=f"email={body['email']}&password=x&csrf_token=t",
        headers={"content-type": "Application/X-WWW-Form-Urlencoded; Charset=UTF-8"}),
    "multipart form": lambda client, body: client.post(
        "/login", data=body | {"csrf_token": "t"}, files={"unused": ("a.txt", b"x")}),
    "multipart in capitals": lambda client, body: client.post(
        "/login", content=b'--B\r\nContent-Disposition: form-data; name="email"\r\n\r\n' + body["email"].encode()
        + b'\r\n--B\r\nContent-Disposition: form-data; name="password"\r\n\r\nx\r\n'
        b'--B\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nt\r\n--B--\r\n',
        headers={"content-type": "MULTIPART/FORM-DATA; boundary=B"}),
}


@pytest.mark.parametrize("spelling", LOGIN_SPELLINGS, ids=list(LOGIN_SPELLINGS))
def test_the_per_account_login_limit_holds_whatever_the_content_type(app_with, spelling) -> None:
    client = app_with(RATE_LIMIT_AUTH_PER_ACCOUNT="2/hour")
    client.cookies.set("imagebooth_csrf", "t")
    login = LOGIN_SPELLINGS[spelling]
    answers = [login(client, {"email": "Victim@Example.com", "password": "wrong password"}).status_code for _ in range(3)]
    assert answers == [401, 401, 429]
    # the account is what is counted: the JSON API is closed for it too, other accounts are not
    assert client.post("/api/v1/auth/login", json={"email": "victim@example.com", "password": "x"}).status_code == 429
    assert client.post("/api/v1/auth/login", json={"email": "other@example.com", "password": "x"}).status_code == 401


# --- uploads ---------------------------------------------------------------------------------
def upload(client: TestClient, headers: dict[str, str]):
    return client.post("/api/v1/subjects", data={"name": "Rex", "class_noun": "circle"},
                       files=files(good_photos(3)), headers=headers)


def test_uploads_are_limited_per_user(app_with, accounts) -> None:
    client = app_with(RATE_LIMIT_UPLOADS_PER_USER="2/hour", RATE_LIMIT_UPLOADS_PER_IP="100/hour")
    accounts.signup(client)
    answers = [upload(client, accounts.csrf(client)) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert answers[2].headers["Retry-After"] and answers[2].json()["error"]["code"] == "rate_limited"
    other = TestClient(client.app, raise_server_exceptions=False, client=("203.0.113.7", 40001))
    accounts.signup(other)
    assert upload(other, accounts.csrf(other)).status_code == 201


def test_uploads_are_limited_per_ip(app_with, accounts) -> None:
    client = app_with(RATE_LIMIT_UPLOADS_PER_USER="100/hour", RATE_LIMIT_UPLOADS_PER_IP="2/hour")
    accounts.signup(client)
    assert upload(client, accounts.csrf(client)).status_code == 201
    other = TestClient(client.app, raise_server_exceptions=False, client=("203.0.113.7", 40001))
    accounts.signup(other)
    assert [upload(other, accounts.csrf(other)).status_code for _ in range(2)] == [201, 429]


# --- Redis down --------------------------------------------------------------------------------
def test_with_redis_down_login_limits_count_in_memory_and_job_limits_let_through(clean_state, env_override) -> None:
    from app.config import get_settings
    from app.ratelimit import RateLimiter

    env_override(REDIS_URL=DEAD_REDIS, BROKER_URL="memory://", RATE_LIMIT_AUTH_PER_ACCOUNT="2/hour",
                 RATE_LIMIT_UPLOADS_PER_USER="1/hour", RATE_LIMIT_JOBS_PER_USER="1/hour")
    limiter = RateLimiter(get_settings())
    auth = [limiter.check("auth", None, "account:victim") for _ in range(3)]
    assert [verdict is not None and verdict.allowed for verdict in auth] == [True, True, False]
    uploads = [limiter.check("uploads", None, "user:u1") for _ in range(2)]
    assert [verdict is not None and verdict.allowed for verdict in uploads] == [True, False]
    assert [limiter.check("jobs", None, "user:u1") for _ in range(3)] == [None, None, None]


def test_with_redis_down_the_login_limit_still_answers_429(app_with) -> None:
    from app.config import get_settings

    broker = get_settings().broker_url
    client = app_with(REDIS_URL=DEAD_REDIS, BROKER_URL=broker, RATE_LIMIT_AUTH_PER_ACCOUNT="2/hour")
    wrong = {"email": "victim@example.com", "password": "wrong password"}
    answers = [client.post("/api/v1/auth/login", json=wrong) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    assert answers[2].headers["Retry-After"]


# --- sessions ----------------------------------------------------------------------------------
def test_an_expired_session_is_logged_out(client, accounts, env_override, monkeypatch) -> None:
    env_override(SESSION_MAX_AGE_S="3600")
    user_id = accounts.signup(client)["id"]
    assert client.get("/api/v1/me").status_code == 200
    from app.auth import cookies
    from app.config import get_settings

    # the same user's cookie, signed by this server an hour and a second ago
    signed_at = int(time.time()) - 3601
    monkeypatch.setattr("itsdangerous.timed.TimestampSigner.get_timestamp", lambda _self: signed_at)
    old = cookies._serializer(get_settings()).dumps({"u": user_id})
    monkeypatch.undo()
    env_override(SESSION_MAX_AGE_S="3600")
    client.cookies.clear()
    client.cookies.set(cookies.SESSION_COOKIE, old)
    assert client.get("/api/v1/me").status_code == 401
    page = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"


# --- multipart total ---------------------------------------------------------------------------
def test_an_upload_over_the_multipart_total_is_413_even_without_a_length(app_with, accounts) -> None:
    client = app_with(MAX_MULTIPART_BYTES="200000", MAX_UPLOAD_BYTES="150000")
    accounts.signup(client)
    photos = [(f"p{i}.png", bytes([i]) * 90_000) for i in range(3)]  # each under the per-file limit
    response = client.post("/api/v1/subjects", data={"name": "Rex", "class_noun": "circle"},
                           files=files(photos), headers=accounts.csrf(client))
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    boundary = b"edge"
    body = b"".join(b"--edge\r\nContent-Disposition: form-data; name=\"images\"; filename=\"p.png\"\r\n\r\n"
                    + bytes([i]) * 90_000 + b"\r\n" for i in range(3)) + b"--edge--\r\n"

    def chunks():  # no Content-Length: the bytes received are counted
        for start in range(0, len(body), 16_384):
            yield body[start:start + 16_384]

    chunked = client.post("/api/v1/subjects", content=chunks(),
                          headers=accounts.csrf(client) | {"content-type": f"multipart/form-data; boundary={boundary.decode()}"})
    assert chunked.status_code == 413

