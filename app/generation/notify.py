"""Job-change notices over Redis pub/sub, so a long-poll wakes the moment a job changes.

Only a hint: the database stays the truth. Without Redis (embedded) or when a notice is
lost, the long-poll falls back to reading the job every few tens of milliseconds.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from app.redis_client import get_redis

log = logging.getLogger(__name__)


def channel(job_id: str) -> str:
    return f"imagebooth:generation:{job_id}"


def job_changed(job_id: str) -> None:
    """Announce a committed change of the job (call after the commit, never before)."""
    client = get_redis()
    if client is None:
        return
    try:
        client.publish(channel(job_id), b"1")
    except RedisError as exc:  # pollers still see the change, only later
        log.warning("could not publish a change of generation %s: %s", job_id, exc)
