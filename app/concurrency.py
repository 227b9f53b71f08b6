"""Bounds on work done at once in the web process, waited for on the event loop.

A bound waited for in a worker thread would block that thread, and the threads are what
requests holding a database connection need to finish: waiting happens here, on the
loop, and a wait longer than its timeout becomes a 503 with Retry-After (load shedding).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import ServiceUnavailable

BUSY_MESSAGE = "The server is busy; try again shortly."

# One semaphore per (event loop, name): a process has one loop in production; tests start several.
_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def loop_semaphore(name: str, size: int) -> asyncio.Semaphore:
    per_loop = _semaphores.setdefault(asyncio.get_running_loop(), {})
    if name not in per_loop:
        per_loop[name] = asyncio.Semaphore(size)
    return per_loop[name]


async def acquire(semaphore: asyncio.Semaphore, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(semaphore.acquire(), timeout_s)
    except TimeoutError:
        raise ServiceUnavailable(BUSY_MESSAGE) from None


@asynccontextmanager
async def bounded(name: str, size: int, timeout_s: float) -> AsyncIterator[None]:
    """At most `size` at once under `name`; 503 after waiting `timeout_s` for a turn."""
    semaphore = loop_semaphore(name, size)
    await acquire(semaphore, timeout_s)
    try:
        yield
    finally:
        semaphore.release()
