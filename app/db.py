"""Database engine and sessions.

The request (or the task, or the CLI command) owns the transaction: `SessionDep` commits
when the route returns and rolls back when it raises; services only add and flush.

In the web process every use of the database holds a *slot* first: at most
`db_pool_size` at once, waited for on the event loop (never in a worker thread), at most
`db_pool_timeout_s`, then 503 with Retry-After. A request's session holds one slot, and so
one connection, from its first line to its commit. Without the slots, requests that hold a
connection wait for a worker thread while every worker thread waits for a connection: the
pool deadlocks until its timeout.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import anyio
from fastapi import Depends
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from app.concurrency import Bound, loop_bound
from app.config import get_settings

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 3
T = TypeVar("T")


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    with _engines_lock:
        if url not in _engines:
            _engines[url] = _create_engine(url)
        return _engines[url]


def _create_engine(url: str) -> Engine:
    settings = get_settings()
    pool = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
    }
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5}, **pool)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # A statement (or a lock wait) running longer is canceled: a 503, not a hang. Added to
    # any `options` the URL carries (connect_args would replace them).
    options = f"{make_url(url).query.get('options') or ''} -c statement_timeout={int(settings.db_statement_timeout_s * 1000)}"
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, "options": options.strip()},
        **pool,
    )


def _ensure_sqlite_folder(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        # If this fails, connecting fails with a database error, which readiness reports.
        with contextlib.suppress(OSError):
            Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection, _record) -> None:
    # WAL lets the web process read while the worker writes; the busy timeout makes a
    # concurrent writer wait instead of failing; SQLite leaves foreign keys off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


@lru_cache(maxsize=4)
def _sessionmaker_for(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def new_session() -> Session:
    return _sessionmaker_for(get_engine())()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work for tasks and CLI commands: commit on success, roll back on error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- slots (web process) ------------------------------------------------------------------
_SLOTS = "database"
_SLOT = "imagebooth.slot"


async def _acquire(timeout_s: float | None = None) -> Bound:
    settings = get_settings()
    bound = loop_bound(_SLOTS, settings.db_pool_size, settings.db_max_waiting)
    await bound.acquire(timeout_s or settings.db_pool_timeout_s)
    return bound


@asynccontextmanager
async def database_slot(timeout_s: float | None = None) -> AsyncIterator[None]:
    """Hold one of the process's database slots (503 when none frees up in time)."""
    bound = await _acquire(timeout_s)
    try:
        yield
    finally:
        bound.release()


async def run_in_slot(function: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
    """Run a blocking function that opens its own session, in a worker thread, in a slot."""
    async with database_slot(timeout_s):
        return await anyio.to_thread.run_sync(function, *args)


async def _request_session() -> AsyncIterator[Session]:
    bound = await _acquire()
    session = new_session()
    session.info[_SLOT] = bound
    try:
        yield session
        await anyio.to_thread.run_sync(session.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(session.rollback)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(session.close)
        # A long-poll may have given the slot up (see `released`) and failed to get it back.
        if session.info.pop(_SLOT, None) is not None:
            bound.release()


@asynccontextmanager
async def released(session: Session) -> AsyncIterator[None]:
    """Commit the request's session and give its slot (and connection) up while the
    block waits - a long-poll - then take a slot again (503 when none frees up)."""
    await anyio.to_thread.run_sync(session.commit)
    session.info.pop(_SLOT).release()
    try:
        yield
    finally:
        session.info[_SLOT] = await _acquire()


# scope="function": commit before the response is sent, so a failed commit becomes an
# error response instead of a success the client already received.
SessionDep = Annotated[Session, Depends(_request_session, scope="function")]


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE; how many rows it changed (conditional transitions read it)."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount


def ping_database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def dispose_engines(close: bool = True) -> None:
    """Forget cached engines. In a forked child pass close=False: the connections belong
    to the parent, and the child must neither use nor close them."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=close)
        _engines.clear()
    _sessionmaker_for.cache_clear()
