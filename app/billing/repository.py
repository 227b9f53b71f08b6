"""Stripe event bookkeeping."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.billing.models import StripeEvent
from app.model_base import new_id, utcnow


def record_event(session: Session, event_id: str, event_type: str) -> bool:
    """Remember an event id; False if it was seen before (or is being handled right now:
    the second insert waits for the first transaction and then inserts nothing)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(StripeEvent)
        .values(id=new_id(), event_id=event_id, type=event_type[:100], processed_at=utcnow())
        .on_conflict_do_nothing()
        .returning(StripeEvent.id)
    )
    return session.execute(statement).first() is not None
