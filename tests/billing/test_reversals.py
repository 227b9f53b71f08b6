"""Money back, from genuinely signed events on every credit gate: a refunded or disputed pack
takes back what is unspent of its credits, never more, never twice; the ledger says why."""

from __future__ import annotations

import pytest

from tests.billing.conftest import checkout_event, deliver, dispute_event, invoice_event, refund_event

pytestmark = pytest.mark.usefixtures("gate")


def balance(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["balance"]


def reversals(client) -> list[tuple[str, int, str]]:
    items = client.get("/api/v1/credits/ledger").json()["items"]
    return [(entry["reason"], entry["amount"], entry["note"]) for entry in items if entry["reason"].startswith("payment_")]


def spend(client, credits: int) -> None:
    """Spend paid credits the way a user does: a fine-tune reserves them (the daily free
    allowance is 0 here, so they come from the paid bucket)."""
    from app.auth.repository import user_by_id
    from app.credits import service
    from app.db import session_scope

    me = client.get("/api/v1/me").json()
    with session_scope() as session:
        user = user_by_id(session, me["id"])
        service.reserve(session, user, credits, f"test-spend:{credits}")
        service.settle(session, user.id, f"test-spend:{credits}", used=credits)


@pytest.fixture
def bought(client, accounts, payments, env_override) -> dict:
    """A user who bought the 100-credit pack (payment intent pi_test_1, $5.00)."""
    env_override(FREE_DAILY_CREDITS="0")
    me = accounts.signup(client)
    assert deliver(client, checkout_event("evt_buy", me["id"])).status_code == 200
    assert balance(client) == 100
    return me


def test_a_refunded_pack_takes_its_credits_back_and_says_why(client, bought) -> None:
    response = deliver(client, refund_event("evt_refund", amount_refunded=500))
    assert response.status_code == 200 and response.json()["duplicate"] is False
    assert balance(client) == 0 and client.get("/api/v1/me").json()["tier"] == "free"
    assert reversals(client) == [("payment_refunded", -100, "refund of pack starter: 100 of 100 credits taken back")]
    # the same refund again (a replay, and a new event id for it) takes nothing more
    assert deliver(client, refund_event("evt_refund", amount_refunded=500)).json()["duplicate"] is True
    deliver(client, refund_event("evt_refund_again", amount_refunded=500))
    assert len(reversals(client)) == 1


def test_partial_refunds_take_their_share_rounded_up(client, bought) -> None:
    deliver(client, refund_event("evt_r1", amount_refunded=125))  # a quarter
    assert balance(client) == 75
    deliver(client, refund_event("evt_r2", amount_refunded=251))  # cumulative: just over half
    assert balance(client) == 49  # ceil(100 x 251 / 500) = 51 taken in all
    assert [amount for _, amount, _ in reversals(client)] == [-26, -25]


def test_spent_credits_are_not_taken_below_zero(client, bought) -> None:
    spend(client, 60)
    deliver(client, refund_event("evt_refund", amount_refunded=500))
    assert balance(client) == 0
    assert reversals(client) == [("payment_refunded", -40, "refund of pack starter: 40 of 100 credits taken back; 60 had been spent")]


def test_the_debt_allowance_lets_the_balance_go_that_far_below_zero(client, bought, env_override) -> None:
    env_override(REFUND_MAX_DEBT="25", FREE_DAILY_CREDITS="0")
    spend(client, 60)
    deliver(client, refund_event("evt_refund", amount_refunded=500))
    assert balance(client) == -25
    # in debt, nothing can be spent (the 402 names what is spendable: nothing)
    answer = client.post("/api/v1/generations", json={"prompt": "a red circle"},
                         headers={"X-CSRF-Token": client.cookies["imagebooth_csrf"]})
    assert answer.status_code == 402 and answer.json()["error"]["balance"] <= 0


def test_a_disputed_pack_takes_its_credits_back(client, bought) -> None:
    assert deliver(client, dispute_event("evt_dispute")).status_code == 200
    assert balance(client) == 0
    assert reversals(client) == [("payment_disputed", -100, "dispute of pack starter: 100 of 100 credits taken back")]
    deliver(client, dispute_event("evt_dispute_repeat"))
    assert len(reversals(client)) == 1


def test_a_refund_then_a_dispute_never_take_more_than_the_pack(client, bought) -> None:
    deliver(client, refund_event("evt_half", amount_refunded=250))
    deliver(client, dispute_event("evt_dispute", amount=250))
    deliver(client, dispute_event("evt_dispute_full", amount=500, dispute="dp_2"))
    assert balance(client) == 0 and sum(amount for _, amount, _ in reversals(client)) == -100


def test_a_refund_of_a_payment_that_bought_no_pack_is_ignored(client, bought) -> None:
    response = deliver(client, refund_event("evt_other", amount_refunded=500, payment_intent="pi_someone_else"))
    assert response.status_code == 200 and balance(client) == 100 and reversals(client) == []


def test_plan_credits_are_not_touched_by_a_pack_refund(client, bought) -> None:
    deliver(client, invoice_event("evt_plan", bought["id"]))  # the subscription's metadata links it
    deliver(client, refund_event("evt_refund", amount_refunded=500))
    assert balance(client) == 1000
