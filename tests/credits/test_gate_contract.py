"""The gate's contract, run against every gate the backend has (database; Redis when real)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.credits import service
from app.credits.models import CreditLedgerEntry, LedgerReason
from app.db import session_scope
from app.errors import AppError
from tests.credits.conftest import ledger_totals

DAY = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)


def reserve(user, amount, reference, now=DAY):
    with session_scope() as session:
        return service.reserve(session, user, amount, reference, now=now)


def settle(user, reference, used, now=DAY):
    with session_scope() as session:
        return service.settle(session, user.id, reference, used, now=now)


def balance(user, now=DAY):
    with session_scope() as session:
        return service.summary(session, user, now=now)


def test_spending_uses_the_allowance_first(gate, make_user) -> None:
    user = make_user(paid=10)
    first = reserve(user, 20, "job:1")
    assert (first.free, first.paid) == (20, 0)
    second = reserve(user, 8, "job:2")
    assert (second.free, second.paid) == (5, 3)
    credits = balance(user)
    assert (credits.balance, credits.free_remaining) == (7, 0)


def test_insufficient_credits_is_402_with_balance_and_needed(gate, make_user) -> None:
    user = make_user(paid=2)
    with pytest.raises(AppError) as refused:
        reserve(user, 28, "job:big")
    error = refused.value
    assert (error.status, error.code, error.details) == (402, "insufficient_credits", {"balance": 27, "needed": 28})
    assert balance(user).spendable == 27
    assert reserve(user, 27, "job:exact").amount == 27
    assert balance(user).spendable == 0


def test_settle_charges_used_and_refunds_the_rest_once(gate, make_user) -> None:
    user = make_user(paid=10)
    reserve(user, 30, "job:1")  # 25 free + 5 paid
    assert balance(user).spendable == 5
    settlement = settle(user, "job:1", 12)  # the allowance pays first
    assert (settlement.used, settlement.refund_free, settlement.refund_paid) == (12, 13, 5)
    assert (balance(user).free_remaining, balance(user).balance) == (13, 10)
    assert settle(user, "job:1", 0) is None  # a second settle changes nothing
    assert settle(user, "job:1", 30) is None
    assert balance(user).spendable == 23
    assert ledger_totals(user.id)[1] == 10


def test_failed_job_refunds_everything_and_cancel_refunds_images_not_made(gate, make_user) -> None:
    user = make_user()
    reserve(user, 4, "generation:failed")
    reserve(user, 8, "generation:canceled")
    assert balance(user).spendable == 13
    settle(user, "generation:failed", 0)
    settle(user, "generation:canceled", 3)  # three of eight images were made
    assert balance(user).spendable == 22
    assert settle(user, "unknown:reference", 1) is None


def test_same_reference_reserves_once(gate, make_user) -> None:
    user = make_user()
    first = reserve(user, 5, "generation:abc")
    again = reserve(user, 5, "generation:abc")
    assert (again.amount, again.free, again.paid) == (first.amount, first.free, first.paid)
    assert balance(user).spendable == 20


def test_rolled_back_request_keeps_its_credits(gate, make_user) -> None:
    user = make_user()
    with pytest.raises(RuntimeError), session_scope() as session:
        service.reserve(session, user, 10, "job:doomed", now=DAY)
        raise RuntimeError("the job could not be queued")
    assert balance(user).spendable == 25
    assert reserve(user, 25, "job:next").amount == 25  # the gate agrees


def test_allowance_resets_at_midnight_and_does_not_stack(gate, make_user) -> None:
    user = make_user(paid=3)
    before_midnight = datetime(2030, 5, 17, 23, 59, 59, tzinfo=UTC)
    reserve(user, 5, "job:1", now=before_midnight)
    settle(user, "job:1", 5, now=before_midnight)
    assert balance(user, before_midnight).free_remaining == 20
    midnight = before_midnight + timedelta(seconds=1)
    after = balance(user, midnight)
    assert (after.free_remaining, after.balance, after.free_resets_at) == (25, 3, midnight + timedelta(days=1))
    assert reserve(user, 28, "job:2", now=midnight).amount == 28  # 25 free, not 45
    with pytest.raises(AppError):
        reserve(user, 1, "job:3", now=midnight)
    # an idle day later: still 25, unused allowance does not pile up
    two_days = midnight + timedelta(days=2)
    settle(user, "job:2", 0, now=midnight)
    assert balance(user, two_days).free_remaining == 25
    assert reserve(user, 28, "job:4", now=two_days).amount == 28


def test_hold_from_yesterday_refunds_paid_but_not_expired_allowance(gate, make_user) -> None:
    user = make_user(paid=5)
    evening = datetime(2030, 5, 17, 22, 0, tzinfo=UTC)
    reserve(user, 30, "finetune:1", now=evening)  # 25 free + 5 paid
    morning = evening + timedelta(hours=10)
    assert balance(user, morning).spendable == 25  # today's allowance, paid still held
    settle(user, "finetune:1", 0, now=morning)
    credits = balance(user, morning)
    assert (credits.free_remaining, credits.balance) == (25, 5)
    assert reserve(user, 30, "finetune:2", now=morning).amount == 30


def test_ledger_balance_equals_the_sum_of_entries(gate, make_user, db) -> None:
    user = make_user(paid=7)
    reserve(user, 9, "job:1")
    settle(user, "job:1", 4)
    from sqlalchemy import select

    entries = db.scalars(select(CreditLedgerEntry).where(CreditLedgerEntry.user_id == user.id)).all()
    reasons = sorted(entry.reason for entry in entries)
    assert reasons == sorted([
        LedgerReason.ADMIN, LedgerReason.DAILY_ALLOWANCE, LedgerReason.RESERVATION,
        LedgerReason.RELEASE, LedgerReason.SPEND,
    ])
    assert sum(entry.amount for entry in entries) == balance(user).spendable == 7 + 25 - 4
