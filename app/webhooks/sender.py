"""One signed POST of a delivery's body, to an address checked just before (targets.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from app.webhooks import signing, targets

USER_AGENT = "ImageBooth-Webhooks/1"
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # None: no HTTP answer (refused, unreachable, timed out)
    error: str | None  # None: delivered (a 2xx)
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


def _pinned_url(target: targets.Target, address: targets.IPAddress) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{target.scheme}://{host}:{target.port}{target.path}"


def _host_header(target: targets.Target) -> str:
    default = targets.SCHEMES[target.scheme] == target.port
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if default else f"{host}:{target.port}"


def post(url: str, body: bytes, secret: str, production: bool, timeout_s: float) -> Outcome:
    """Check the URL again (DNS may have changed since registration), then POST to the first
    checked address with the original Host and TLS name. Redirects are not followed: a 3xx is
    a failed attempt (its target was never checked). The answer's body is not read."""
    started = time.monotonic()

    def outcome(status_code: int | None, error: str | None) -> Outcome:
        return Outcome(status_code, error[:MAX_ERROR_CHARS] if error else None, round((time.monotonic() - started) * 1000))

    try:
        target, addresses = targets.check(url, production)
    except targets.TargetRefused as refused:
        return outcome(None, f"not sent: {refused}")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Host": _host_header(target),
        signing.HEADER: signing.signature_header(secret, int(time.time()), body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", _pinned_url(target, addresses[0]), content=body, headers=headers,
                          extensions=extensions) as response,
        ):
            code = response.status_code
            location = response.headers.get("location", "")
    except httpx.HTTPError as exc:
        return outcome(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if 200 <= code < 300:
        return outcome(code, None)
    if 300 <= code < 400:
        return outcome(code, f"answered {code} redirecting to {location or '(no Location)'}; redirects are not followed")
    return outcome(code, f"answered HTTP {code}")
