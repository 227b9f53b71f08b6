"""The worker's repair round: nothing accepted is ever left behind.

Every `job_reconcile_every_s` (and once at start), in every worker process, for every kind:
1. settle the jobs that ended and are not settled (the settlement after the outcome failed);
2. queue again the running jobs whose heartbeat stopped (their worker died), or fail and
   refund those that used up their attempts;
3. send the queued jobs that were never sent (the web process died between its commit and its
   send, or the broker was down) or whose message looks lost (the broker restarted empty).
Each step is a short transaction of its own and every change is conditional, so several
workers may reconcile at once. Never run inside a web request: a GET must stay a read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from app.config import get_settings
from app.db import session_scope
from app.jobs import lifecycle, outbox, repository, settlement
from app.jobs.kinds import KINDS, JobKind
from app.model_base import JobStatus, utcnow

log = logging.getLogger(__name__)
SETTLE_GRACE_S = 2.0  # the settlement right after an outcome normally holds within this


@dataclass
class Round:
    """What one round did, by job id."""

    settled: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # steps that could not run (an outage)


def reconcile() -> Round:
    result = Round()
    for kind in KINDS:
        for step in (_settle_unsettled, _recover_stale, _send_due):
            try:
                step(kind, result)
            except Exception as exc:  # noqa: BLE001 - an outage: the next round tries again
                log.warning("reconciler: %s of %s jobs failed (%s: %s)", step.__name__, kind.name, type(exc).__name__, exc)
                result.errors.append(f"{kind.name}{step.__name__}")
    _log(result)
    return result


def _settle_unsettled(kind: JobKind, result: Round) -> None:
    with session_scope() as session:
        ids = repository.unsettled(session, kind.model, utcnow() - timedelta(seconds=SETTLE_GRACE_S))
    result.settled += [job_id for job_id in ids if settlement.settle(kind, job_id)]


def _recover_stale(kind: JobKind, result: Round) -> None:
    beat_before = utcnow() - timedelta(seconds=get_settings().job_stale_after_s)
    with session_scope() as session:
        stale = repository.stale_running(session, kind.model, beat_before)
    for job_id, attempt in stale:
        with session_scope() as session:
            outcome = lifecycle.recover_stale(session, kind, job_id, attempt, beat_before)
        if outcome == JobStatus.QUEUED:
            result.requeued.append(job_id)
        elif outcome == JobStatus.FAILED:
            result.failed.append(job_id)


def _send_due(kind: JobKind, result: Round) -> None:
    result.sent += outbox.send_due(kind)


def _log(result: Round) -> None:
    if result.requeued or result.failed:
        log.warning("reconciler: worker lost for %d job(s): queued again %s, given up %s",
                    len(result.requeued) + len(result.failed), result.requeued, result.failed)
    if result.settled or result.sent:
        log.info("reconciler: settled %s, sent %s", result.settled, result.sent)
