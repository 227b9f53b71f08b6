"""The shared Redis client, or None in embedded mode (no REDIS_URL)."""

from __future__ import annotations

from functools import lru_cache

import redis

REDIS_TIMEOUT_S = 2


@lru_cache(maxsize=4)
def redis_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S)


def get_redis() -> redis.Redis | None:
    from app.config import get_settings

    url = get_settings().redis_url
    return redis_for(url) if url else None
