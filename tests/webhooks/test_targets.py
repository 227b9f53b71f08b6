"""Which URLs a webhook may call: syntax, and in production public addresses only (SSRF)."""

from __future__ import annotations

import socket

import pytest

from app.webhooks import targets

pytestmark = pytest.mark.backend_independent

REFUSED_IN_PRODUCTION = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("http://10.0.0.5/hook", "private"),
    ("http://172.16.3.4/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),  # cloud metadata
    ("http://[fe80::1]/hook", "link-local"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://100.64.0.1/hook", "non-public"),  # carrier-grade NAT
    ("http://224.0.0.1/hook", "multicast"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED_IN_PRODUCTION)
def test_non_public_targets_are_refused_in_production_only(url, kind) -> None:
    with pytest.raises(targets.TargetRefused, match=f", an? {kind} address"):
        targets.check(url, production=True)
    target, addresses = targets.check(url, production=False)  # a developer's local receiver
    assert target.url == url and addresses


def test_public_addresses_are_allowed_in_production() -> None:
    target, addresses = targets.check("https://93.184.215.14:8443/hooks?x=1", production=True)
    assert (target.scheme, target.host, target.port, target.path) == ("https", "93.184.215.14", 8443, "/hooks?x=1")
    assert [str(address) for address in addresses] == ["93.184.215.14"]


def test_every_address_a_name_resolves_to_is_checked(monkeypatch) -> None:
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    with pytest.raises(targets.TargetRefused, match=r"resolves to 10\.1\.2\.3, a private address"):
        targets.check("https://hooks.example.com/x", production=True)


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/x", "http:// or https://"),
    ("example.com/hook", "http:// or https://"),
    ("http:///path-only", "must name a host"),
    ("https://user:pw@example.com/hook", "user name or password"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
    ("https://example.com/" + "x" * 2048, "at most 2048 characters"),
])
def test_urls_that_cannot_be_called_say_why(url, reason) -> None:
    with pytest.raises(targets.TargetRefused, match=reason.replace("?", r"\?").replace("+", r"\+")):
        targets.check(url, production=False)
