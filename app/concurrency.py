"""Bounds on work done at once in the web process, waited for on the event loop.

A bound waited for in a worker thread would block that thread, and the threads are what
requests holding a database connection need to finish: waiting happens here, on the
loop. Load is shed with a 503 and Retry-After, fast: at once when the queue is already
full, or when a turn takes longer than the timeout.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import ServiceUnavailable

BUSY_MESSAGE = "The server is busy; try again shortly."
SHED_RETRY_AFTER_S = 1


class Bound:
    """At most `size` holders; at most `max_waiting` callers queued behind them."""

    def __init__(self, size: int, max_waiting: int | None = None) -> None:
        self._semaphore = asyncio.Semaphore(size)
        self._max_waiting = max_waiting
        self._waiting = 0

    async def acquire(self, timeout_s: float) -> None:
        if self._semaphore.locked() and self._max_waiting is not None and self._waiting >= self._max_waiting:
            raise ServiceUnavailable(BUSY_MESSAGE, retry_after_s=SHED_RETRY_AFTER_S)
        self._waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout_s)
        except TimeoutError:
            raise ServiceUnavailable(BUSY_MESSAGE) from None
        finally:
            self._waiting -= 1

    def release(self) -> None:
        self._semaphore.release()


# One bound per (event loop, name): a process has one loop in production; tests start several.
_bounds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Bound]] = weakref.WeakKeyDictionary()


def loop_bound(name: str, size: int, max_waiting: int | None = None) -> Bound:
    per_loop = _bounds.setdefault(asyncio.get_running_loop(), {})
    if name not in per_loop:
        per_loop[name] = Bound(size, max_waiting)
    return per_loop[name]


@asynccontextmanager
async def bounded(name: str, size: int, timeout_s: float) -> AsyncIterator[None]:
    """At most `size` at once under `name`; 503 after waiting `timeout_s` for a turn."""
    bound = loop_bound(name, size)
    await bound.acquire(timeout_s)
    try:
        yield
    finally:
        bound.release()
