"""GET /api/v1/me: the account and its credits, computed from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.credits.service import next_utc_midnight


def test_me_shows_account_and_fresh_allowance(client, accounts) -> None:
    me = accounts.signup(client)
    body = client.get("/api/v1/me").json()
    assert body["id"] == me["id"] and body["email"] == me["email"] and body["tier"] == "free"
    credits = body["credits"]
    assert credits["balance"] == 0  # no ledger entries, no invented charges
    assert credits["free_remaining"] == 25
    resets = datetime.fromisoformat(credits["free_resets_at"])
    now = datetime.now(UTC)
    assert resets.tzinfo is not None and timedelta(0) < resets - now <= timedelta(days=1)
    assert (resets.hour, resets.minute, resets.second) == (0, 0, 0)


def test_balance_is_the_sum_of_the_ledger(client, accounts, run_cli) -> None:
    me = accounts.signup(client)
    assert run_cli("credits", "grant", me["email"], "30").returncode == 0
    assert run_cli("credits", "grant", me["email"], "-5", "--note", "correction").returncode == 0
    assert client.get("/api/v1/me").json()["credits"]["balance"] == 25


def test_free_allowance_follows_settings(client, accounts, env_override) -> None:
    accounts.signup(client)
    env_override(FREE_DAILY_CREDITS="3")
    assert client.get("/api/v1/me").json()["credits"]["free_remaining"] == 3


def test_next_utc_midnight() -> None:
    late = datetime(2025, 3, 9, 23, 59, 59, tzinfo=UTC)
    assert next_utc_midnight(late) == datetime(2025, 3, 10, tzinfo=UTC)
    midnight = datetime(2025, 3, 10, tzinfo=UTC)
    assert next_utc_midnight(midnight) == datetime(2025, 3, 11, tzinfo=UTC)
