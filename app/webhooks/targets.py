"""Which URLs a webhook may call (SSRF rules), checked at registration and at every send.

In production a webhook must reach the public internet only: a URL whose host resolves to a
loopback, private, link-local or otherwise non-public address (the metadata service at
169.254.169.254, the database next door) is refused. Every address the name resolves to is
checked, and the request is then sent to one of those checked addresses (pinned), so a DNS
answer that changes between the check and the connection cannot point it elsewhere. Outside
production such targets are allowed, so a receiver on the developer's own machine works.
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as ResolveTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.webhooks.models import MAX_URL_CHARS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
RESOLVE_TIMEOUT_S = 5.0
# getaddrinfo has no timeout of its own: it runs here and is waited for at most RESOLVE_TIMEOUT_S.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class TargetRefused(ValueError):
    """The URL may not be called; the message says why, for the 422 and the attempt record."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent


def parse(url: str) -> Target:
    """A URL's parts, or TargetRefused for anything but a plain http(s) URL with a host."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"is not a valid URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise TargetRefused("must start with http:// or https://")
    if not parts.hostname:
        raise TargetRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry a user name or password (the signature proves the sender)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url.strip(), parts.scheme, parts.hostname, port or SCHEMES[parts.scheme], path)


def resolve(target: Target) -> list[IPAddress]:
    """Every address the host resolves to (an IP literal resolves to itself)."""
    try:
        found = _resolver.submit(socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM)
        answers = found.result(timeout=RESOLVE_TIMEOUT_S)
    except ResolveTimeout:
        raise TargetRefused(f"the host {target.host} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"the host {target.host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers))
    if not addresses:
        raise TargetRefused(f"the host {target.host} does not resolve")
    return addresses


def non_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for kind in ("unspecified", "loopback", "link_local", "private", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def check(url: str, production: bool) -> tuple[Target, list[IPAddress]]:
    """The target and the addresses it may be sent to; TargetRefused when it may not be called."""
    target = parse(url)
    addresses = resolve(target)
    if production:
        for address in addresses:
            kind = non_public(address)
            if kind is not None:
                article = "an" if kind[0] in "aeiou" else "a"
                raise TargetRefused(f"the host {target.host} resolves to {address}, {article} {kind} address; "
                                    "webhooks go to public addresses only")
    return target, addresses
