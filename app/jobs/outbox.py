"""Tasks are sent after the transaction that made them due commits, and that they are due is
in the same transaction (`dispatched_at` NULL), so nothing is lost when the send is.

The web process (or whoever queued the job) sends right after its commit and marks the job
sent. The reconciler sends what is still unsent a moment later (the web process died, the broker
was down), and sends again a queued job that no worker took within `job_resend_after_s` of its
last send (the broker lost the message), at doubling intervals: a job waiting in a long queue
collects a few harmless duplicates, not one per round. A duplicate costs nothing: claims are
conditional, so only one delivery runs a job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import session_scope
from app.jobs import repository
from app.jobs.kinds import JobKind
from app.model_base import utcnow
from app.queue import enqueue
from app.unit_of_work import after_commit

log = logging.getLogger(__name__)
UNSENT_GRACE_S = 2.0  # the sender after commit normally marks a job sent within milliseconds
MAX_BACKOFF_DOUBLINGS = 4  # re-sends of one job at most job_resend_after_s x 16 apart


def send_after_commit(session: Session, kind: JobKind, job_id: str) -> None:
    after_commit(session, lambda: send(kind, job_id))


def send(kind: JobKind, job_id: str) -> bool:
    """Send the job's task and note that it went out; False (the job stays due) on failure."""
    try:
        enqueue(kind.task, job_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the reconciler sends it later
        log.warning("%s %s not sent yet (%s: %s); the reconciler will send it", kind.name, job_id,
                    type(exc).__name__, exc)
        return False
    with session_scope() as session:
        repository.mark_sent(session, kind.model, job_id, utcnow())
    return True


def send_due(kind: JobKind, now: datetime | None = None) -> list[str]:
    """Send every queued job of `kind` that is unsent or whose message looks lost."""
    # 1. take the sends (conditional: of several reconcilers, one sends each job)
    now = now or utcnow()
    resend_after = timedelta(seconds=get_settings().job_resend_after_s)
    with session_scope() as session:
        due = repository.due_for_sending(session, kind.model, now - timedelta(seconds=UNSENT_GRACE_S), now - resend_after)
        taken = [
            (job_id, dispatches + 1) for job_id, dispatches, sent_at in due
            if (sent_at is None or sent_at < now - resend_after * _backoff(dispatches))
            and repository.take_send(session, kind.model, job_id, dispatches, now)
        ]
    # 2. send, after that commit; once a send fails (the broker is down) the rest wait too,
    #    due again next round
    sent: list[str] = []
    for index, (job_id, _) in enumerate(taken):
        try:
            enqueue(kind.task, job_id)
        except Exception as exc:  # noqa: BLE001 - any broker failure: next round
            log.warning("could not send %d %s job(s) (%s: %s); next round", len(taken) - index, kind.name,
                        type(exc).__name__, exc)
            with session_scope() as session:
                for unsent_id, dispatches in taken[index:]:
                    repository.mark_unsent(session, kind.model, unsent_id, dispatches)
            break
        sent.append(job_id)
    return sent


def _backoff(dispatches: int) -> int:
    return 2 ** min(max(dispatches - 1, 0), MAX_BACKOFF_DOUBLINGS)
