"""The production gate: per-user counters in Redis, decided by Lua scripts.

Key `credits:{user_id}` is a hash {free, paid, day, epoch}. It is a cache of the ledger and
can vanish at any time (restart, FLUSHDB, eviction):
- a missing key, or one from an earlier day, is rebuilt from the ledger under a lock
  (open reservations are in the ledger as negative entries, so nothing is counted twice);
- every rebuild gets a new `epoch`. A change made in the ledger is applied to Redis after
  the commit only if the epoch is still the one seen before the commit; otherwise a rebuild
  happened in between and may or may not contain the change, so the key is deleted and
  rebuilt again. A rebuild first marks the key `building:...` and only writes its result
  if the mark is still there, so a change committed while it read the ledger is never lost.
- a reservation rolled back with its request is given back to the same epoch only;
- reservations in flight must not be missed by a rebuild: a reservation holds a shared lock
  on the user's row from just after its Lua decision (taken by the statement that writes
  its hold) until its transaction ends, and a rebuild takes the exclusive lock before it
  reads the ledger, so it waits for them. A
  reservation that took its lock after a rebuild finished checks the epoch and, if it
  changed, decides again against the rebuilt counter (its first decision was lost with
  the old key).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import redis
from sqlalchemy.orm import Session

from app.config import get_settings
from app.credits import ledger, repository
from app.credits.gate import insufficient_credits
from app.credits.ledger import Reservation, Settlement
from app.db import session_scope
from app.errors import ServiceUnavailable
from app.model_base import new_id
from app.unit_of_work import after_commit

log = logging.getLogger(__name__)
_SHARE_LOCKED = "credit_gate_share_locked"

REBUILD_LOCK_MS = 10_000
REBUILD_WAIT_S = 5.0
BUILDING = "building:"

RESERVE_LUA = """
local h = redis.call('HMGET', KEYS[1], 'free', 'paid', 'day', 'epoch')
if not h[1] or not h[2] or not h[3] or not h[4] then return {'missing'} end
if h[3] ~= ARGV[2] or string.sub(h[4], 1, 9) == 'building:' then return {'newday'} end
local free = math.max(tonumber(h[1]), 0)
local paid = tonumber(h[2])
local amount = tonumber(ARGV[1])
if free + paid < amount then return {'insufficient', free + paid} end
local take_free = math.min(free, amount)
local take_paid = amount - take_free
if take_free > 0 then redis.call('HINCRBY', KEYS[1], 'free', -take_free) end
if take_paid > 0 then redis.call('HINCRBY', KEYS[1], 'paid', -take_paid) end
return {'ok', take_free, take_paid, h[4]}
"""

# ARGV: epoch seen before the change, free delta, paid delta.
APPLY_LUA = """
local e = redis.call('HGET', KEYS[1], 'epoch')
if not e then return 0 end
if e == ARGV[1] and string.sub(e, 1, 9) ~= 'building:' then
  if tonumber(ARGV[2]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'free', ARGV[2]) end
  if tonumber(ARGV[3]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'paid', ARGV[3]) end
  return 1
end
redis.call('DEL', KEYS[1])
return -1
"""

# ARGV: the mark, free, paid, day, new epoch.
FINISH_REBUILD_LUA = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'free', ARGV[2], 'paid', ARGV[3], 'day', ARGV[4], 'epoch', ARGV[5])
return 1
"""

CHECK_EPOCH_LUA = """
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then return 1 end
return 0
"""

UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def counter_key(user_id: str) -> str:
    return f"credits:{{{user_id}}}"


def lock_key(user_id: str) -> str:
    return f"credits:{{{user_id}}}:rebuild"


class RedisGate:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(RESERVE_LUA)
        self._apply = client.register_script(APPLY_LUA)
        self._finish = client.register_script(FINISH_REBUILD_LUA)
        self._unlock = client.register_script(UNLOCK_LUA)
        self._check_epoch = client.register_script(CHECK_EPOCH_LUA)

    # --- the contract -----------------------------------------------------------------
    def reserve(self, session: Session, user_id: str, amount: int, reference: str, now: datetime) -> Reservation:
        if amount == 0:
            return ledger.existing_reservation(session, user_id, reference) or Reservation(user_id, reference, 0, 0, 0)
        # 1. decide in Redis (rebuilding the counter from the ledger when it is missing)
        # (A second reservation in the same transaction must not rebuild: the rebuild
        # would wait for this very transaction's lock.)
        locked = session.info.get(_SHARE_LOCKED)
        already_locked = locked is not None and locked is session.get_transaction()
        free, paid, epoch = self._take(session, user_id, amount, reference, now, may_rebuild=not already_locked)
        # 2. record the hold; the same statement takes a shared lock on the user's row, which
        #    holds off counter rebuilds until this transaction ends. A repeated reference
        #    gives the credits straight back.
        written = ledger.write_hold(session, user_id, reference, free, paid, now, share_lock=True)
        session.info[_SHARE_LOCKED] = session.get_transaction()
        if not written:
            if free or paid:
                self._apply_now(user_id, epoch, free, paid)
            existing = ledger.existing_reservation(session, user_id, reference)
            assert existing is not None
            return existing
        # 3. a rebuild that finished between the decision and the lock could not see the
        #    decision: decide again on the rebuilt counter
        if not self._check_epoch(keys=[counter_key(user_id)], args=[epoch]):
            first = (free, paid)
            free, paid, epoch = self._take(session, user_id, amount, reference, now, may_rebuild=False, first_try=False)
            if (free, paid) != first:
                ledger.rewrite_hold(session, user_id, reference, free, paid, now)
        # 4. after a rollback: give the credits back (to the same counter only)
        after_commit(session, on_commit=lambda: None, on_rollback=lambda: self._apply_now(user_id, epoch, free, paid))
        return Reservation(user_id, reference, amount, free, paid)

    def settle(self, session: Session, user_id: str, reference: str, used: int, now: datetime) -> Settlement | None:
        epoch = self._epoch(user_id)
        settlement = ledger.write_settlement(session, user_id, reference, used, now)
        if settlement is not None:
            self._after_commit_apply(session, user_id, epoch, settlement.refund_free, settlement.refund_paid)
        return settlement

    def credited(self, session: Session, user_id: str, free: int, paid: int) -> None:
        self._after_commit_apply(session, user_id, self._epoch(user_id), free, paid)

    # --- inspection (tests, operators) --------------------------------------------------
    def counter(self, user_id: str) -> dict[str, str] | None:
        values = self.client.hgetall(counter_key(user_id))
        return {_text(key): _text(value) for key, value in values.items()} or None

    # --- internals ----------------------------------------------------------------------
    def _take(
        self, session: Session, user_id: str, amount: int, reference: str, now: datetime, may_rebuild: bool = True,
        first_try: bool = True,
    ) -> tuple[int, int, str]:
        """Take `amount` from the counter: (free, paid, epoch). `first_try=False`: deciding
        again after this transaction wrote its hold, which is then no sign of a repeat."""
        day = ledger.day_of(now).isoformat()
        deadline = time.monotonic() + REBUILD_WAIT_S
        checked_against_ledger = False
        while True:
            result = self._reserve(keys=[counter_key(user_id)], args=[amount, day])
            outcome = result[0].decode()
            if outcome == "ok":
                return int(result[1]), int(result[2]), result[3].decode()
            if outcome == "insufficient":
                if first_try and ledger.existing_reservation(session, user_id, reference) is not None:
                    return 0, 0, ""  # a repeat: write_hold inserts nothing, nothing to give back
                if may_rebuild and not checked_against_ledger:
                    # Before refusing, make the counter agree with the ledger once: a refund or
                    # grant whose update was lost in a Redis blip leaves it low (never high),
                    # and a refusal is the only moment that error shows.
                    checked_against_ledger = True
                    self._rebuild(user_id, now)
                    continue
                raise insufficient_credits(int(result[1]), amount)
            if not may_rebuild:
                # The counter vanished again while this transaction holds the user's lock.
                raise ServiceUnavailable("The credit counter is being rebuilt; try again shortly.")
            if not self._rebuild(user_id, now) and time.monotonic() > deadline:
                raise ServiceUnavailable("The credit counter is being rebuilt; try again shortly.")

    def _rebuild(self, user_id: str, now: datetime) -> bool:
        """Rebuild the counter from the ledger; False if another process holds the lock."""
        token = new_id()
        if not self.client.set(lock_key(user_id), token, nx=True, px=REBUILD_LOCK_MS):
            time.sleep(0.005)
            return False
        try:
            allowance = get_settings().free_daily_credits
            day = ledger.day_of(now)
            with session_scope() as session:
                # waits for reservations in flight (they hold the shared lock) to end
                repository.lock_account(session, user_id)
                ledger.ensure_allowance(session, user_id, now, allowance)
                while True:
                    mark = BUILDING + new_id()
                    self.client.hset(counter_key(user_id), "epoch", mark)
                    available = ledger.available(session, user_id, day, allowance)
                    args: list[str | int] = [mark, available.free, available.paid, day.isoformat(), new_id()]
                    # written before the commit releases the lock, so waiting reservations
                    # find the new counter
                    if self._finish(keys=[counter_key(user_id)], args=args):
                        return True
                    # a change committed while we read: read again
        finally:
            self._unlock(keys=[lock_key(user_id)], args=[token])

    def _epoch(self, user_id: str) -> str:
        epoch = self.client.hget(counter_key(user_id), "epoch")
        return _text(epoch) if epoch else ""

    def _apply_now(self, user_id: str, epoch: str, free: int, paid: int) -> None:
        try:
            self._apply(keys=[counter_key(user_id)], args=[epoch, free, paid])
        except redis.RedisError:
            # Redis is gone: when it comes back the counter is rebuilt from the ledger.
            log.warning("credit counter of %s not updated (Redis unreachable)", user_id, exc_info=True)

    def _after_commit_apply(self, session: Session, user_id: str, epoch: str, free: int, paid: int) -> None:
        if free or paid:
            after_commit(session, on_commit=lambda: self._apply_now(user_id, epoch, free, paid))


def _text(value: bytes | str) -> str:
    # The client returns bytes (no decode_responses); typed stubs allow either.
    return value.decode() if isinstance(value, bytes) else value
