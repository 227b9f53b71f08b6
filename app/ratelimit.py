"""Rate limits (the `limits` library) per user and per IP on the routes that cost something.

- job submissions (POST /api/v1/generations, POST /api/v1/subjects/{id}/finetunes) and
  subject uploads (POST /api/v1/subjects): per caller (session cookie or API key) and per
  IP, counted by a middleware before the body is read;
- login and signup (API and form pages): per IP in the middleware, and per account (the
  email tried) by the route through `limit_account`, once the body is parsed - whatever
  the content type and its spelling, the email is the one the route itself will use.
Over a limit: 429 `rate_limited` with `Retry-After`; every limited route also answers
`X-RateLimit-Limit/Remaining/Reset` (the tightest of its limits). Counters live in Redis
when REDIS_URL is set (shared by every web process), in memory otherwise. The IP is the
peer's, or the forwarded client's when the peer is a trusted proxy (`app.proxies`).

When Redis is unreachable (failures are retried at most every STORAGE_RETRY_S):
- job submissions are let through (fail open): the limit protects capacity, and the
  credit gate and the per-user job-count limit in the database still hold (the gate fails
  closed on its own);
- logins, signups and uploads are counted in this process's memory instead (fail closed,
  to a local counter): the same limits, per web process, so a Redis outage never opens the
  door to password guessing or to decoding floods.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Literal

import anyio
from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import AppError, render_error

log = logging.getLogger(__name__)

API_KEY_CACHE_S = 60.0
API_KEY_CACHE_SIZE = 10_000
STORAGE_TIMEOUT_S = 1.0
STORAGE_RETRY_S = 5.0
Kind = Literal["jobs", "auth", "uploads"]
# What a kind does while its shared storage is unreachable (see the module's docstring).
WHEN_STORAGE_DOWN: dict[Kind, Literal["open", "local"]] = {"jobs": "open", "auth": "local", "uploads": "local"}
_VERDICT_STATE = "rate_limit_verdict"


@dataclass(frozen=True)
class Rule:
    kind: Kind
    method: str
    path: re.Pattern[str]


RULES = (
    Rule("jobs", "POST", re.compile(r"^/api/v1/generations/?$")),
    Rule("jobs", "POST", re.compile(r"^/api/v1/subjects/[^/]+/finetunes/?$")),
    Rule("uploads", "POST", re.compile(r"^/api/v1/subjects/?$")),
    Rule("auth", "POST", re.compile(r"^/api/v1/auth/(login|signup)/?$")),
    Rule("auth", "POST", re.compile(r"^/(login|signup)/?$")),
)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_at - time.time())))
        return headers

    def rejection(self) -> AppError:
        seconds = self.headers()["Retry-After"]
        return AppError("rate_limited", f"Too many requests; try again in {seconds} seconds.", 429,
                        headers=self.headers())


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.shared = _storage(settings)
        self.local: Storage = self.shared if isinstance(self.shared, MemoryStorage) else MemoryStorage()
        self._shared_down_until = 0.0
        self.limits: dict[tuple[Kind, str], list[RateLimitItem]] = {
            ("jobs", "user"): parse_many(settings.rate_limit_jobs_per_user),
            ("jobs", "ip"): parse_many(settings.rate_limit_jobs_per_ip),
            ("uploads", "user"): parse_many(settings.rate_limit_uploads_per_user),
            ("uploads", "ip"): parse_many(settings.rate_limit_uploads_per_ip),
            ("auth", "user"): parse_many(settings.rate_limit_auth_per_account),
            ("auth", "ip"): parse_many(settings.rate_limit_auth_per_ip),
        }

    def check(self, kind: Kind, ip: str | None, who: str | None) -> Verdict | None:
        """Count one request against every limit that applies; the tightest one answers.
        None: not counted (the shared storage is down and this kind fails open)."""
        if time.monotonic() >= self._shared_down_until:
            try:
                return self._count(self.shared, kind, ip, who)
            except Exception:  # any storage failure: Redis is down or stuck
                log.warning("rate limit storage unreachable; %s limits %s", kind,
                            "counted in memory" if WHEN_STORAGE_DOWN[kind] == "local" else "not applied",
                            exc_info=True)
                self._shared_down_until = time.monotonic() + STORAGE_RETRY_S
        return self._count(self.local, kind, ip, who) if WHEN_STORAGE_DOWN[kind] == "local" else None

    def _count(self, storage: Storage, kind: Kind, ip: str | None, who: str | None) -> Verdict:
        strategy = SlidingWindowCounterRateLimiter(storage)
        keys = ([("ip", ip)] if ip else []) + ([("user", who)] if who else [])
        tightest: Verdict | None = None
        for scope_name, identity in keys:
            for item in self.limits[(kind, scope_name)]:
                allowed = strategy.hit(item, kind, scope_name, identity)
                stats = strategy.get_window_stats(item, kind, scope_name, identity)
                verdict = Verdict(allowed, item.amount, stats.remaining, stats.reset_time)
                if not allowed:
                    return verdict
                tightest = _tighter(tightest, verdict)
        assert tightest is not None
        return tightest


def _storage(settings: Settings) -> Storage:
    if not settings.redis_url:
        return MemoryStorage()
    # Short timeouts: a stuck Redis must cost a request a second at most, not forever.
    return storage_from_string(settings.redis_url, socket_timeout=STORAGE_TIMEOUT_S,
                               socket_connect_timeout=STORAGE_TIMEOUT_S)


def _tighter(first: Verdict | None, second: Verdict | None) -> Verdict | None:
    if first is None or second is None:
        return first or second
    return second if second.remaining < first.remaining else first


def limit_account(request: Request, email: str) -> None:
    """Count a login or signup for the account `email` names; 429 over the limit.
    Call it before checking the password."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None or not email.strip():
        return
    account = "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    verdict = limiter.check("auth", None, account)
    if verdict is not None and not verdict.allowed:
        raise verdict.rejection()
    # The middleware answers the tightest of this and the per-IP verdict in the headers.
    setattr(request.state, _VERDICT_STATE, verdict)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, limiter: RateLimiter | None) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter
        self._api_key_users: dict[str, tuple[str | None, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._rule_for(scope)
        if rule is None or self.limiter is None:
            await self.app(scope, receive, send)
            return
        # 1. who is asking: the caller for jobs and uploads (accounts are the route's);
        #    errors here (no database slot in time) are answered here: this runs outside
        #    the app's exception handlers
        try:
            who = await self._caller_of(scope) if rule.kind != "auth" else None
        except AppError as refused:
            await render_error(Request(scope, receive), refused)(scope, receive, send)
            return
        ip = (scope.get("client") or ("unknown", 0))[0]
        # 2. count and decide
        verdict = await anyio.to_thread.run_sync(self.limiter.check, rule.kind, ip, who)
        if verdict is not None and not verdict.allowed:
            await render_error(Request(scope, receive), verdict.rejection())(scope, receive, send)
            return

        # 3. pass on, adding the headers of the tightest limit to the response
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                tightest = _tighter(verdict, scope.get("state", {}).get(_VERDICT_STATE))
                if tightest is not None:
                    headers = MutableHeaders(scope=message)
                    for name, value in tightest.headers().items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _rule_for(scope: Scope) -> Rule | None:
        if scope["type"] != "http":
            return None
        for rule in RULES:
            if scope["method"] == rule.method and rule.path.match(scope["path"]):
                return rule
        return None

    async def _caller_of(self, scope: Scope) -> str | None:
        """The user behind the request, without the full authentication (the route does that)."""
        request = Request(scope)
        authorization = request.headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return await self._api_key_user(token.strip())
            return None
        from app.auth import cookies

        user_id = cookies.session_user_id(request, self.settings)
        return f"user:{user_id}" if user_id else None

    async def _api_key_user(self, token: str) -> str | None:
        from app.auth.service import hash_api_key
        from app.db import run_in_slot

        key_hash = hash_api_key(token)
        cached = self._api_key_users.get(key_hash)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        who = await run_in_slot(_user_of_api_key, key_hash)
        if len(self._api_key_users) >= API_KEY_CACHE_SIZE:
            self._api_key_users.clear()
        self._api_key_users[key_hash] = (who, time.monotonic() + API_KEY_CACHE_S)
        return who


def _user_of_api_key(key_hash: str) -> str | None:
    from app.auth import repository
    from app.db import new_session

    with new_session() as session:
        api_key = repository.active_api_key_by_hash(session, key_hash)
        return f"user:{api_key.user_id}" if api_key else None
