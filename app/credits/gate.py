"""The credit gate: an atomic check-and-reserve before any work is queued.

Two implementations with one contract (tests/credits/test_gate_contract.py runs against both):
- `RedisGate` (production): a Lua script per user decides in Redis; the ledger records it.
- `DatabaseGate` (embedded, no Redis): the user's account is locked for the transaction,
  the balance summed from the ledger and the hold written, all in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from app.config import get_settings
from app.credits import ledger, repository
from app.credits.ledger import Reservation, Settlement
from app.errors import AppError


class Gate(Protocol):
    def reserve(self, session: Session, user_id: str, amount: int, reference: str, now: datetime) -> Reservation: ...

    def settle(self, session: Session, user_id: str, reference: str, used: int, now: datetime) -> Settlement | None: ...

    def credited(self, session: Session, user_id: str, free: int, paid: int) -> None:
        """Credits were added to the ledger in this transaction (purchase, grant)."""


def insufficient_credits(balance: int, needed: int) -> AppError:
    # `balance` here is everything spendable now (today's free credits plus paid ones):
    # the number to compare with `needed`.
    return AppError(
        "insufficient_credits",
        f"This needs {needed} credits and you have {balance} (free allowance and paid credits together).",
        402,
        balance=balance,
        needed=needed,
    )


class DatabaseGate:
    def reserve(self, session: Session, user_id: str, amount: int, reference: str, now: datetime) -> Reservation:
        # 1. a repeat of the same reference returns the first reservation
        existing = ledger.existing_reservation(session, user_id, reference)
        if existing is not None or amount == 0:
            return existing or Reservation(user_id, reference, 0, 0, 0)
        # 2. one decision at a time per user, then look again under the lock
        repository.lock_account(session, user_id)
        existing = ledger.existing_reservation(session, user_id, reference)
        if existing is not None:
            return existing
        # 3. the day's allowance, the balance, the check
        allowance = get_settings().free_daily_credits
        ledger.ensure_allowance(session, user_id, now, allowance)
        available = ledger.available(session, user_id, ledger.day_of(now), allowance)
        if available.total < amount:
            raise insufficient_credits(available.total, amount)
        # 4. the hold
        free, paid = ledger.split(available, amount)
        ledger.write_hold(session, user_id, reference, free, paid, now)
        return Reservation(user_id, reference, amount, free, paid)

    def settle(self, session: Session, user_id: str, reference: str, used: int, now: datetime) -> Settlement | None:
        return ledger.write_settlement(session, user_id, reference, used, now)

    def credited(self, session: Session, user_id: str, free: int, paid: int) -> None:
        pass  # the ledger is all there is


def get_gate() -> Gate:
    from app.redis_client import get_redis

    client = get_redis()
    # SQLite serializes every write anyway: the database gate is exact and cheap there.
    if client is None or get_settings().is_sqlite:
        return DatabaseGate()
    from app.credits.redis_gate import RedisGate

    return RedisGate(client)
