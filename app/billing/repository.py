"""Billing queries: processed events, billing accounts, pack payments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.billing.models import BillingAccount, PackPayment, StripeEvent
from app.model_base import new_id, utcnow


def _dialect(session: Session) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


def record_event(session: Session, event_id: str, event_type: str) -> bool:
    """Remember an event id; False if it was seen before (or is being handled right now:
    the second insert waits for the first transaction and then inserts nothing)."""
    statement = (
        _dialect(session).insert(StripeEvent)
        .values(id=new_id(), event_id=event_id, type=event_type[:100], processed_at=utcnow())
        .on_conflict_do_nothing()
        .returning(StripeEvent.id)
    )
    return session.execute(statement).first() is not None


# --- accounts -----------------------------------------------------------------------------
def account_of(session: Session, user_id: str, lock: bool = False) -> BillingAccount | None:
    query = select(BillingAccount).where(BillingAccount.user_id == user_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def ensure_account(session: Session, user_id: str, lock: bool = False) -> BillingAccount:
    """The user's account row, inserted if missing (a concurrent insert is no error)."""
    statement = _dialect(session).insert(BillingAccount).values(
        user_id=user_id, cancel_at_period_end=False, state_event_created=0, updated_at=utcnow()
    )
    session.execute(statement.on_conflict_do_nothing())
    account = account_of(session, user_id, lock=lock)
    assert account is not None
    return account


def set_customer_once(session: Session, user_id: str, customer_id: str) -> str:
    """Store the user's Stripe customer unless one is stored already; returns the stored one."""
    session.execute(
        update(BillingAccount)
        .where(BillingAccount.user_id == user_id, BillingAccount.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id, updated_at=utcnow())
    )
    account = account_of(session, user_id)
    assert account is not None and account.stripe_customer_id is not None
    return account.stripe_customer_id


def account_for_subscription(session: Session, subscription_id: str, lock: bool = False) -> BillingAccount | None:
    query = select(BillingAccount).where(BillingAccount.subscription_id == subscription_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def release_subscription(session: Session, subscription_id: str, except_user: str) -> None:
    """A subscription belongs to one account: forget it on any other (the unique index)."""
    session.execute(
        update(BillingAccount)
        .where(BillingAccount.subscription_id == subscription_id, BillingAccount.user_id != except_user)
        .values(subscription_id=None, updated_at=utcnow())
    )


# --- pack payments --------------------------------------------------------------------------
def record_pack_payment(session: Session, **values: Any) -> None:
    """Once per checkout session (a repeat inserts nothing)."""
    statement = _dialect(session).insert(PackPayment).values(id=new_id(), created_at=utcnow(), **values)
    session.execute(statement.on_conflict_do_nothing())


def pack_payment_for_intent(session: Session, payment_intent_id: str) -> PackPayment | None:
    """Locked until the transaction ends: reversals of one payment are decided one at a time."""
    query = select(PackPayment).where(PackPayment.payment_intent_id == payment_intent_id).with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))
