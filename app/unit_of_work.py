"""What must wait until a unit of work commits: sending a task, settling credits, announcing
a change, updating the Redis credit counter.

Services register effects on the session; they run once the outermost transaction has
committed and given its connection back (each in its own error boundary: the commit has
happened, so a failing effect is logged, never turned into an error for a request that
succeeded), and are dropped, or their `on_rollback` run, when it rolls back. Whatever an
effect does must also be recorded in the committed rows, so that the reconciler
(app/jobs/reconciler.py) can redo it when the effect is lost with its process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)
Effect = Callable[[], object]  # what it returns is ignored
_PENDING = "imagebooth_after_commit"
_COMMITTED = "imagebooth_committed_effects"


def after_commit(session: Session, on_commit: Effect, on_rollback: Effect | None = None) -> None:
    session.info.setdefault(_PENDING, []).append((on_commit, on_rollback))


def _mark_committed(session: Session) -> None:
    if _PENDING in session.info:
        session.info[_COMMITTED] = session.info.pop(_PENDING)


def _run_effects(session: Session, transaction: SessionTransaction) -> None:
    # Run when the outermost transaction has ended, so after its connection went back to the
    # pool: an effect that opens a session of its own never holds two connections at once.
    if transaction.parent is not None:
        return  # a savepoint: the outer transaction decides
    for on_commit, _ in session.info.pop(_COMMITTED, ()):
        _guarded(on_commit)
    for _, on_rollback in session.info.pop(_PENDING, ()):  # still pending: not committed
        if on_rollback is not None:
            _guarded(on_rollback)


def _guarded(effect: Effect) -> None:
    try:
        effect()
    except Exception:
        log.exception("an after-commit effect failed")


# Listening on the Session class once costs every session nothing until an effect is pending.
event.listen(Session, "after_commit", _mark_committed)
event.listen(Session, "after_transaction_end", _run_effects)
