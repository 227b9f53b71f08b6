"""Liveness (/healthz: the process answers) and readiness (/readyz: its dependencies do,
and the database schema is the one this code needs)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.config import Settings, get_settings
from app.db import ping_database, run_in_slot
from app.errors import ServiceUnavailable
from app.openapi import errors
from app.redis_client import get_redis

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
BROKER_TIMEOUT_S = 2
SLOT_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    # async: answered on the event loop, even while every worker thread is busy
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz() -> JSONResponse:
    settings = get_settings()
    # The database checks wait for a slot like any request (a busy process is not ready);
    # the others run in a worker thread: the event loop never waits on a network.
    results = await _database_checks()
    checks: dict[str, Callable[[], None]] = {"broker": lambda: check_broker(settings)}
    if settings.redis_url:
        checks["redis"] = _ping_redis
    for name, check in checks.items():
        results[name] = await anyio.to_thread.run_sync(_run, name, check)
    failing = [name for name, result in results.items() if result != "ok"]
    if not failing:
        return JSONResponse({"status": "ok", "checks": results})
    body = {
        "error": {
            "code": "not_ready",
            "message": "Not ready: " + ", ".join(f"{name} {results[name]}" for name in failing) + ".",
            "failing": failing,
            "checks": results,
        }
    }
    return JSONResponse(body, status_code=503)


async def _database_checks() -> dict[str, str]:
    try:
        return await run_in_slot(_check_database, timeout_s=SLOT_TIMEOUT_S)
    except ServiceUnavailable:
        return {"database": "busy"}


def _check_database() -> dict[str, str]:
    database = _run("database", ping_database)
    if database != "ok":
        return {"database": database}
    from app.migrate import schema_state  # Alembic is loaded by the first probe, not at start-up

    try:
        state = schema_state()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the log has the detail
        log.warning("readiness check schema failed: %s", exc)
        return {"database": "ok", "schema": "unreadable"}
    return {"database": "ok", "schema": "ok" if state.is_current else state.describe()}


def _ping_redis() -> None:
    client = get_redis()
    if client is None:
        raise RuntimeError("Redis is configured but no client could be made")
    client.ping()


def _run(name: str, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the log has the detail
        log.warning("readiness check %s failed: %s", name, exc)
        return "unreachable"
    return "ok"


def check_broker(settings: Settings) -> None:
    if settings.uses_filesystem_broker:
        # The filesystem broker is reachable when its folders can be written.
        for folder in ("data_folder_in", "control_folder"):
            _ensure_writable_folder(settings.broker_transport_options[folder])
        return
    # kombu is imported here, not at start-up: only readiness probes need it.
    from kombu import Connection

    with Connection(settings.broker_url, connect_timeout=BROKER_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)


def _ensure_writable_folder(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".readyz-"):
        pass
