"""Plans from genuinely signed events, on every credit gate: subscribing, paid invoices (once
each), a failed payment, cancellation, and the one tier rule behind /me and the job limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.billing.conftest import (
    deliver,
    invoice_event,
    subscription_checkout_event,
    subscription_event,
)

pytestmark = pytest.mark.usefixtures("gate")


def me(client) -> dict:
    return client.get("/api/v1/me").json()


def plan_credits(client) -> list[tuple[str, int, str]]:
    items = client.get("/api/v1/credits/ledger").json()["items"]
    return [(entry["reason"], entry["amount"], entry["reference"]) for entry in items if entry["reason"] == "plan_credits"]


def test_subscribing_links_the_plan_and_each_paid_invoice_grants_its_credits(client, accounts, payments) -> None:
    user = accounts.signup(client)
    assert me(client)["plan"] == "free" and me(client)["subscription"] is None
    # 1. the checkout completes: the subscription is the user's, no credits yet (the invoice brings them)
    assert deliver(client, subscription_checkout_event("evt_1", user["id"])).json()["duplicate"] is False
    linked = me(client)
    assert (linked["tier"], linked["plan"], linked["subscription"]["status"]) == ("premium", "pro", "active")
    assert linked["max_active_jobs"] == 8 and linked["credits"]["balance"] == 0
    # 2. the first invoice, in the 2025 shape (subscription under parent.subscription_details)
    renews = int(time.time()) + 30 * 86400
    assert deliver(client, invoice_event("evt_2", user["id"], period_end=renews)).status_code == 200
    paid = me(client)
    assert paid["credits"]["balance"] == 1000
    assert datetime.fromisoformat(paid["subscription"]["renews_at"]).timestamp() == renews
    # 3. the renewal, in the older shape (invoice.subscription): another period, another grant
    deliver(client, invoice_event("evt_3", user["id"], invoice_id="in_2", period_end=renews + 30 * 86400, layout="2024"))
    assert plan_credits(client) == [("plan_credits", 1000, "stripe:invoice:in_2"), ("plan_credits", 1000, "stripe:invoice:in_1")]
    assert datetime.fromisoformat(me(client)["subscription"]["renews_at"]).timestamp() == renews + 30 * 86400


def test_a_repeated_invoice_event_and_a_second_event_for_the_same_invoice_grant_nothing(client, subscribed) -> None:
    repeat = deliver(client, invoice_event("evt_sub_invoice_1", subscribed["id"]))
    assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
    # Stripe sends invoice.payment_succeeded beside invoice.paid: a new event id, the same invoice
    other = deliver(client, invoice_event("evt_other_id", subscribed["id"], event_type="invoice.payment_succeeded"))
    assert other.status_code == 200 and other.json()["duplicate"] is False
    assert me(client)["credits"]["balance"] == 1000
    assert plan_credits(client) == [("plan_credits", 1000, "stripe:invoice:in_1")]


def test_the_invoice_may_arrive_before_the_checkout(client, accounts, payments) -> None:
    user = accounts.signup(client)
    deliver(client, invoice_event("evt_inv", user["id"]))  # names the user through the subscription's metadata
    deliver(client, subscription_checkout_event("evt_chk", user["id"]))
    state = me(client)
    assert (state["plan"], state["subscription"]["status"], state["credits"]["balance"]) == ("pro", "active", 1000)


def test_a_failed_payment_is_past_due_with_a_grace_period_then_paid_again(client, subscribed) -> None:
    deliver(client, invoice_event("evt_fail", subscribed["id"], invoice_id="in_2", event_type="invoice.payment_failed"))
    state = me(client)
    assert state["subscription"]["status"] == "past_due" and state["subscription"]["in_good_standing"] is True
    grace_left = datetime.fromisoformat(state["subscription"]["grace_until"]) - datetime.now(UTC)
    assert timedelta(days=2.99) < grace_left <= timedelta(days=3)  # IMAGEBOOTH_PLAN_GRACE_DAYS' default
    assert state["plan"] == "pro" and state["tier"] == "premium"  # the benefits last through the grace
    # Stripe's retry succeeds: active again, the period's credits granted once
    deliver(client, invoice_event("evt_retry_ok", subscribed["id"], invoice_id="in_2"))
    state = me(client)
    assert state["subscription"]["status"] == "active" and state["subscription"]["grace_until"] is None
    assert state["credits"]["balance"] == 2000


def test_past_due_after_the_grace_period_is_free(client, accounts, payments, env_override) -> None:
    env_override(PLAN_GRACE_DAYS="0")
    user = accounts.signup(client)
    deliver(client, subscription_checkout_event("evt_1", user["id"]))
    deliver(client, invoice_event("evt_fail", user["id"], event_type="invoice.payment_failed"))
    state = me(client)
    assert (state["plan"], state["tier"], state["subscription"]["status"]) == ("free", "free", "past_due")
    assert state["subscription"]["in_good_standing"] is False and state["max_active_jobs"] == 1


def test_cancellation_at_the_period_end_then_the_end(client, subscribed) -> None:
    end = int(time.time()) + 10 * 86400
    deliver(client, subscription_event("evt_cancel", subscribed["id"], cancel_at_period_end=True, period_end=end))
    state = me(client)["subscription"]
    assert state["renews_at"] is None and datetime.fromisoformat(state["ends_at"]).timestamp() == end
    assert me(client)["plan"] == "pro"
    deliver(client, subscription_event("evt_deleted", subscribed["id"], event_type="customer.subscription.deleted",
                                       status="canceled", period_end=end))
    ended = me(client)
    assert (ended["plan"], ended["subscription"]["status"], ended["subscription"]["in_good_standing"]) == ("free", "canceled", False)
    # the credits the plan granted stay (paid credits never expire), so the account is still premium
    assert ended["credits"]["balance"] == 1000 and ended["tier"] == "premium"


def test_an_older_event_arriving_late_changes_no_state(client, subscribed) -> None:
    now = int(time.time())
    deliver(client, subscription_event("evt_new", subscribed["id"], status="canceled",
                                       event_type="customer.subscription.deleted", created=now))
    deliver(client, subscription_event("evt_old", subscribed["id"], status="active", created=now - 60))
    assert me(client)["subscription"]["status"] == "canceled"


def test_a_plan_change_in_the_portal_follows_the_price(client, subscribed) -> None:
    deliver(client, subscription_event("evt_upgrade", subscribed["id"], price="price_max_monthly"))
    state = me(client)
    assert state["plan"] == "max" and state["max_active_jobs"] == 16
    deliver(client, invoice_event("evt_max_invoice", subscribed["id"], invoice_id="in_2"))
    assert plan_credits(client)[0] == ("plan_credits", 3000, "stripe:invoice:in_2")


def test_plans_list_marks_the_current_one(client, subscribed) -> None:
    body = client.get("/api/v1/billing/plans").json()
    assert [plan["id"] for plan in body["plans"]] == ["pro", "max"] and body["current"] == "pro"
    assert body["payments_enabled"] is True


def test_the_one_tier_rule_behind_me_and_the_job_limit(client, accounts, run_cli) -> None:
    """Granted credits make an account premium in /me as in the job limit; spent, they don't."""
    from app.billing import entitlements
    from app.db import session_scope

    user = accounts.signup(client)
    assert (me(client)["tier"], me(client)["max_active_jobs"]) == ("free", 1)
    assert run_cli("credits", "grant", user["email"], "5").returncode == 0
    assert (me(client)["tier"], me(client)["max_active_jobs"]) == ("premium", 4)
    with session_scope() as session:
        assert entitlements.of(session, user["id"]).priority == entitlements.CREDITS_PRIORITY
    assert run_cli("credits", "grant", user["email"], "-5").returncode == 0
    assert me(client)["tier"] == "free"


def test_a_plan_grants_its_job_limit_and_priority(client, subscribed, db) -> None:
    from app.billing import entitlements

    rights = entitlements.of(db, subscribed["id"])
    assert (rights.tier, rights.max_active_jobs, rights.priority) == ("premium", 8, 2)
