"""Fixtures for the credit tests: users with credits, and each gate this backend can run."""

from __future__ import annotations

import pytest

from app.auth.models import User
from app.credits import service
from app.model_base import new_id


def gate_kinds(backend: str) -> list[str]:
    # The database gate runs on both databases; the Redis gate needs the real backend.
    return ["database", "redis"] if backend == "real" else ["database"]


@pytest.fixture
def make_user(db):
    def make(paid: int = 0, email: str | None = None) -> User:
        user = User(email=email or f"{new_id()[:12]}@example.com", password_hash="not-a-hash")
        db.add(user)
        db.flush()
        if paid:
            service.admin_grant(db, user, paid, note="test credits")
        db.commit()
        return user

    return make


@pytest.fixture
def use_gate(monkeypatch):
    """use_gate("redis" | "database"): every service call goes through that gate."""
    from app.credits import gate as gate_module

    def use(kind: str):
        if kind == "redis":
            from app.credits.redis_gate import RedisGate
            from app.redis_client import get_redis

            chosen = RedisGate(get_redis())
        else:
            chosen = gate_module.DatabaseGate()
        monkeypatch.setattr(service, "get_gate", lambda: chosen)
        return chosen

    return use


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gate_kind" in metafunc.fixturenames:
        import os

        metafunc.parametrize("gate_kind", gate_kinds(os.environ.get("IMAGEBOOTH_TEST_BACKEND", "embedded")))


@pytest.fixture
def gate(gate_kind, use_gate, clean_state):
    return use_gate(gate_kind)


def ledger_totals(user_id: str) -> tuple[int, int]:
    """(free, paid) summed from the committed ledger."""
    from app.credits import repository
    from app.db import session_scope

    with session_scope() as session:
        totals = repository.bucket_totals(session, user_id)
    return totals.free, totals.paid
