"""The credits of a job that has ended, settled in a transaction of their own.

The outcome is committed first, so no trouble with the credit gate (Redis away, a lock timeout)
can undo a finished result. Settlement is then tried right after the outcome's commit and, until
it holds, by every round of the reconciler (`settled_at` is NULL until then). The ledger is the
truth and settling twice changes nothing (a reference is released once), so a retry is safe.
"""

from __future__ import annotations

from app.credits import pricing
from app.credits import service as credits
from app.db import session_scope
from app.generation.models import Generation
from app.jobs import repository
from app.jobs.kinds import JobKind, JobRow
from app.model_base import JobStatus, utcnow


def settle(kind: JobKind, job_id: str) -> bool:
    """Charge what the ended job keeps, release the rest; False if there was nothing to do."""
    with session_scope() as session:
        job = repository.get(session, kind.model, job_id)
        if job is None or not job.status.is_final or job.settled_at is not None:
            return False
        credits.settle(session, job.user_id, kind.reference(job.id), used=charge(job))
        repository.mark_settled(session, kind.model, job_id, utcnow())
    return True


def charge(job: JobRow) -> int:
    """What an ended job keeps of its reservation: a generation pays for the pictures it made
    (recorded only when it succeeds), a fine-tune for a model it delivered."""
    if isinstance(job, Generation):
        return pricing.charge_for_pictures(job.cost, job.n, len(job.images))
    return job.cost if job.status == JobStatus.SUCCEEDED else 0
