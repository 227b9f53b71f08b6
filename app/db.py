"""Database engine and sessions.

The request (or the task, or the CLI command) owns the transaction: `SessionDep` commits
when the route returns and rolls back when it raises; services only add and flush.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 3


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    with _engines_lock:
        if url not in _engines:
            _engines[url] = _create_engine(url)
        return _engines[url]


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
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


def _request_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


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
