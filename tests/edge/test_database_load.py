"""The database under load: requests wait for a slot on the event loop (no pool deadlock),
a slot that never frees up and a statement that runs too long answer 503 with Retry-After."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text

CONCURRENT = 60


@pytest.fixture
def served_with(clean_state, env_override):
    clients: list[TestClient] = []

    def make(**settings: str) -> TestClient:
        env_override(**settings)
        from app.main import create_app

        clients.append(TestClient(create_app(), raise_server_exceptions=False).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def at_once(count: int, call) -> list:
    start = threading.Barrier(count)

    def one(_index: int):
        start.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_many_concurrent_requests_on_a_small_pool_all_answer(served_with, accounts) -> None:
    # More requests than worker threads (40) and than connections: before the slots, the
    # requests holding connections waited for threads that waited for connections.
    client = served_with(DB_POOL_SIZE="2", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT_S="60", DB_MAX_WAITING="1000")
    accounts.signup(client)
    statuses = at_once(CONCURRENT, lambda: client.get("/api/v1/me").status_code)
    assert statuses == [200] * CONCURRENT


def test_no_free_slot_in_time_is_503_with_retry_after(served_with, accounts) -> None:
    from app import db

    client = served_with(DB_POOL_SIZE="1", DB_POOL_TIMEOUT_S="0.2")
    accounts.signup(client)
    assert client.portal is not None
    held = client.portal.call(db._acquire)  # the one slot, taken by "another request"
    try:
        busy = client.get("/api/v1/me")
        ready = client.get("/readyz")
    finally:
        client.portal.call(held.release)
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "service_unavailable"
    assert int(busy.headers["Retry-After"]) > 0 and "busy" in busy.json()["error"]["message"]
    assert ready.status_code == 503 and ready.json()["error"]["checks"]["database"] == "busy"
    assert client.get("/healthz").status_code == 200  # liveness needs no slot
    assert client.get("/api/v1/me").status_code == 200  # and the slot is back


def test_a_full_queue_sheds_at_once_with_a_short_retry_after(served_with, accounts) -> None:
    from app import db

    client = served_with(DB_POOL_SIZE="1", DB_MAX_WAITING="0", DB_POOL_TIMEOUT_S="60")
    accounts.signup(client)
    assert client.portal is not None
    held = client.portal.call(db._acquire)
    try:
        shed = client.get("/api/v1/me")  # would wait 60 s for the slot if it queued
    finally:
        client.portal.call(held.release)
    assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
    assert client.get("/api/v1/me").status_code == 200


def test_the_rate_limiters_api_key_lookup_sheds_too(served_with, accounts) -> None:
    # The lookup runs in a middleware, outside the app's exception handlers: it answers
    # its own 503 (it was a 500 under load).
    from app import db

    client = served_with(DB_POOL_SIZE="1", DB_MAX_WAITING="0", DB_POOL_TIMEOUT_S="60")
    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    held = client.portal.call(db._acquire)
    try:
        shed = client.post("/api/v1/generations", json={"prompt": "a red circle"},
                           headers={"Authorization": f"Bearer {key}"})
    finally:
        client.portal.call(held.release)
    assert shed.status_code == 503 and shed.json()["error"]["code"] == "service_unavailable"


def test_a_statement_waiting_too_long_is_503_with_retry_after(served_with, accounts, backend) -> None:
    client = served_with(DB_STATEMENT_TIMEOUT_S="0.5", RATE_LIMITS_ENABLED="false")
    me = accounts.signup(client)
    from app.config import get_settings
    from app.db import get_engine

    with _write_lock_held(get_settings().database_url, me["id"], backend, get_engine()):
        response = client.post("/api/v1/generations", json={"prompt": "a red circle"}, headers=accounts.csrf(client))
    assert response.status_code == 503, response.text
    assert response.json()["error"]["message"] == "The database is busy; try again shortly."
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/api/v1/me").json()["credits"]["free_remaining"] == get_settings().free_daily_credits


class _write_lock_held:
    """Another transaction holding what a submission must write: the user's row on
    Postgres, the database's write lock on SQLite (whose busy timeout then expires)."""

    def __init__(self, url: str, user_id: str, backend: str, engine) -> None:
        self.url, self.user_id, self.backend, self.engine = url, user_id, backend, engine

    def __enter__(self) -> None:
        if self.backend == "real":
            self.connection = self.engine.connect()
            self.connection.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": self.user_id})
        else:
            self.raw = sqlite3.connect(make_url(self.url).database, isolation_level=None)
            self.raw.execute("BEGIN IMMEDIATE")

    def __exit__(self, *exc_info) -> None:
        if self.backend == "real":
            self.connection.rollback()
            self.connection.close()
        else:
            self.raw.execute("ROLLBACK")
            self.raw.close()
