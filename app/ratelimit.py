"""Rate limits (the `limits` library) per user and per IP on the routes that cost something.

A middleware, so the routes themselves stay unaware of it:
- job submissions (POST /api/v1/generations, POST /api/v1/subjects/{id}/finetunes): per
  caller (session cookie or API key) and per IP;
- login and signup (API and form pages): per account (the email tried) and per IP.
Over a limit: 429 `rate_limited` with `Retry-After`; every limited route also answers
`X-RateLimit-Limit/Remaining/Reset` (the tightest of its limits). Counters live in Redis
when REDIS_URL is set (shared by every web process), in memory otherwise. If Redis is
unreachable the request is let through: rate limits protect capacity, the credit gate
protects money and fails closed on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

import anyio
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

log = logging.getLogger(__name__)

API_KEY_CACHE_S = 60.0
API_KEY_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Rule:
    kind: str  # "jobs" or "auth"
    method: str
    path: re.Pattern[str]


RULES = (
    Rule("jobs", "POST", re.compile(r"^/api/v1/generations/?$")),
    Rule("jobs", "POST", re.compile(r"^/api/v1/subjects/[^/]+/finetunes/?$")),
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


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.storage = storage_from_string(settings.redis_url or "memory://")
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.limits: dict[tuple[str, str], list[RateLimitItem]] = {
            ("jobs", "user"): parse_many(settings.rate_limit_jobs_per_user),
            ("jobs", "ip"): parse_many(settings.rate_limit_jobs_per_ip),
            ("auth", "user"): parse_many(settings.rate_limit_auth_per_account),
            ("auth", "ip"): parse_many(settings.rate_limit_auth_per_ip),
        }

    def check(self, kind: str, ip: str, who: str | None) -> Verdict:
        """Count one request against every limit that applies; the tightest one answers."""
        keys = [("ip", ip)] + ([("user", who)] if who else [])
        tightest: Verdict | None = None
        for scope_name, identity in keys:
            for item in self.limits[(kind, scope_name)]:
                allowed = self.strategy.hit(item, kind, scope_name, identity)
                stats = self.strategy.get_window_stats(item, kind, scope_name, identity)
                verdict = Verdict(allowed, item.amount, stats.remaining, stats.reset_time)
                if not allowed:
                    return verdict
                if tightest is None or verdict.remaining < tightest.remaining:
                    tightest = verdict
        assert tightest is not None
        return tightest


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings) if settings.rate_limits_enabled else None
        self._api_key_users: dict[str, tuple[str | None, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._rule_for(scope)
        if rule is None or self.limiter is None:
            await self.app(scope, receive, send)
            return
        # 1. who is asking: the caller (jobs) or the account tried (auth); the body is
        #    read for the latter and replayed to the route
        body: bytes | None = None
        if rule.kind == "auth":
            body = await _read_body(receive)
            who = _account_in(body, _header(scope, "content-type"))
        else:
            who = await anyio.to_thread.run_sync(self._caller_of, scope)
        ip = (scope.get("client") or ("unknown", 0))[0]
        # 2. count and decide
        try:
            verdict = await anyio.to_thread.run_sync(self.limiter.check, rule.kind, ip, who)
        except Exception:  # storage unreachable: let the request through
            log.warning("rate limit storage unavailable; request not limited", exc_info=True)
            await self.app(scope, _replay(body, receive) if body is not None else receive, send)
            return
        if not verdict.allowed:
            await _reject(scope, receive, send, verdict)
            return
        # 3. pass on, adding the headers to the response
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in verdict.headers().items():
                    headers[name] = value
            await send(message)

        await self.app(scope, _replay(body, receive) if body is not None else receive, send_with_headers)

    @staticmethod
    def _rule_for(scope: Scope) -> Rule | None:
        if scope["type"] != "http":
            return None
        for rule in RULES:
            if scope["method"] == rule.method and rule.path.match(scope["path"]):
                return rule
        return None

    def _caller_of(self, scope: Scope) -> str | None:
        """The user behind the request, without the full authentication (the route does that)."""
        authorization = _header(scope, "authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return self._api_key_user(token.strip())
            return None
        from app.auth import cookies

        user_id = cookies.session_user_id(Request(scope), self.settings)
        return f"user:{user_id}" if user_id else None

    def _api_key_user(self, token: str) -> str | None:
        from app.auth.service import hash_api_key

        key_hash = hash_api_key(token)
        cached = self._api_key_users.get(key_hash)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        from app.auth import repository
        from app.db import new_session

        session = new_session()
        try:
            api_key = repository.active_api_key_by_hash(session, key_hash)
            who = f"user:{api_key.user_id}" if api_key else None
        finally:
            session.close()
        if len(self._api_key_users) >= API_KEY_CACHE_SIZE:
            self._api_key_users.clear()
        self._api_key_users[key_hash] = (who, time.monotonic() + API_KEY_CACHE_S)
        return who


# --- helpers --------------------------------------------------------------------------
def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _account_in(body: bytes, content_type: str | None) -> str | None:
    """The email a login or signup is for (hashed: raw emails do not belong in Redis keys)."""
    email = None
    try:
        if content_type and content_type.startswith("application/x-www-form-urlencoded"):
            email = parse_qs(body.decode()).get("email", [None])[0]
        else:
            parsed = json.loads(body or b"null")
            email = parsed.get("email") if isinstance(parsed, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(email, str) or not email.strip():
        return None
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def _reject(scope: Scope, receive: Receive, send: Send, verdict: Verdict) -> None:
    from app.errors import AppError, render_error

    seconds = verdict.headers()["Retry-After"]
    error = AppError(
        "rate_limited", f"Too many requests; try again in {seconds} seconds.", 429, headers=verdict.headers()
    )
    response = render_error(Request(scope, receive), error)
    await response(scope, receive, send)
