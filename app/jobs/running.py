"""A worker's handle on a job it claimed: heartbeat, progress, cancel check, outcome.

Everything is per job id and attempt, so a worker that runs several jobs at once (a batch)
holds one `JobRun` each, and one heartbeat thread per process beats all of them. Every write is
conditional on the job still being this attempt's: a cancel from its owner, or the reconciler
handing the job to another worker after missed beats, always wins over a late report.
Database trouble while a job runs is waited out (reports are skipped, the outcome is retried
for OUTCOME_RETRY_S) and, past that, left to the reconciler, never guessed at.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import session_scope
from app.jobs import lifecycle, repository
from app.jobs.kinds import JobKind
from app.model_base import JobStatus, utcnow

log = logging.getLogger(__name__)
DATABASE_ERRORS = (OperationalError, InterfaceError)
OUTCOME_RETRY_S = 60.0  # a finished job's outcome waits this long for the database to return
OUTCOME_RETRY_MAX_DELAY_S = 2.0  # so that it is written within 2 s of the database returning


class JobStopped(Exception):
    """The job is no longer this worker's: canceled by its owner, or given to another worker."""


def claim(kind: JobKind, job_id: str) -> JobRun | None:
    """queued -> running for this worker; None when there is nothing to do (the job is
    unknown, has ended, or another worker holds it: a duplicate delivery)."""
    claimed = claim_all(kind, [job_id])
    return claimed[0] if claimed else None


def claim_all(kind: JobKind, job_ids: list[str]) -> list[JobRun]:
    """queued -> running, in one transaction, for each of `job_ids` still queued (a batch);
    the others (canceled meanwhile, taken by another worker) are left out."""
    runs = []
    with session_scope() as session:
        now = utcnow()
        for job_id in job_ids:
            attempt = repository.claim(session, kind.model, job_id, now)
            if attempt is not None:
                lifecycle.announce_after_commit(session, kind, job_id)
                runs.append(JobRun(kind, job_id, attempt))
    return runs


@dataclass
class JobRun:
    kind: JobKind
    job_id: str
    attempt: int
    clock: Callable[[], float] = time.monotonic
    lost: bool = False  # found no longer ours
    _last_report: float = field(default=-math.inf)
    _last_check: float = field(default=-math.inf)

    def report(self, force: bool = False, **values: Any) -> None:
        """Progress and other columns of the running job, at most once per the kind's
        progress_every_s unless `force`d. Raises JobStopped once the job is not ours."""
        now = self.clock()
        if force or now - self._last_report >= self.kind.progress_every_s:
            self._last_report = now
            try:
                with session_scope() as session:
                    ours = repository.transition(session, self.kind.model, self.job_id, repository.RUNNING,
                                                 self.attempt, heartbeat_at=utcnow(), **values)
                self.lost = self.lost or not ours
                if ours:
                    self._last_check = now  # the conditional write was the cancel check too
                    self.kind.announce(self.job_id)
            except DATABASE_ERRORS as exc:  # a missed report; the next one tries again
                log.warning("%s %s: progress not written (%s)", self.kind.name, self.job_id, type(exc).__name__)
        if self.lost:
            raise JobStopped(self.job_id)

    def stopped(self) -> bool:
        """The cancel check, read at most once per progress_every_s: True once the job is
        not ours (a database outage reads as 'go on')."""
        now = self.clock()
        if not self.lost and now - self._last_check >= self.kind.progress_every_s:
            self._last_check = now
            try:
                with session_scope() as session:
                    state = repository.attempt_state(session, self.kind.model, self.job_id)
                self.lost = state != (JobStatus.RUNNING, self.attempt)
            except DATABASE_ERRORS as exc:
                log.warning("%s %s: cancel check skipped (%s)", self.kind.name, self.job_id, type(exc).__name__)
        return self.lost

    def status(self) -> JobStatus | None:
        with session_scope() as session:
            state = repository.attempt_state(session, self.kind.model, self.job_id)
        return state[0] if state else None

    # --- the outcome ------------------------------------------------------------------
    def succeed(self, record: Record | None = None, **values: Any) -> bool:
        """Record what the job made (`record`, in the same transaction) and end it; False,
        with nothing recorded, when it is no longer ours."""
        return succeed_together([(self, record)], **values)[0]

    def fail(self, message: str) -> bool:
        return _finish_together([(self, None)], JobStatus.FAILED, error=message)[0]


Record = Callable[[Session], None]


# --- several jobs at once (a batch): one transaction each time ----------------------------
def report_together(runs: list[JobRun], **values: Any) -> None:
    """Progress (and heartbeat) of several running jobs in one transaction, each write
    conditional on its attempt, which is also their cancel check: a job no longer ours is
    marked lost. A database outage skips the report (the next one tries again)."""
    live = [run for run in runs if not run.lost]
    try:
        with session_scope() as session:
            ours = [repository.transition(session, run.kind.model, run.job_id, repository.RUNNING, run.attempt,
                                          heartbeat_at=utcnow(), **values) for run in live]
    except DATABASE_ERRORS as exc:
        log.warning("progress of %d jobs not written (%s)", len(live), type(exc).__name__)
        return
    for run, still in zip(live, ours, strict=True):
        run.lost = not still
        if still:
            run.kind.announce(run.job_id)


def succeed_together(outcomes: Sequence[tuple[JobRun, Record | None]], **values: Any) -> list[bool]:
    """Record what each job made and end it, all in one transaction; per job, False (with
    nothing of it recorded) when it is no longer ours."""
    return _finish_together(outcomes, JobStatus.SUCCEEDED, progress=1.0, error=None, **values)


def _finish_together(outcomes: Sequence[tuple[JobRun, Record | None]], status: JobStatus, **values: Any) -> list[bool]:
    """The outcomes, retried through a database outage of up to OUTCOME_RETRY_S (the work
    is done; redoing it would cost more). Past that the error propagates and the jobs, still
    running with no heartbeat, are the reconciler's."""
    clock = outcomes[0][0].clock
    deadline, delay = clock() + OUTCOME_RETRY_S, 0.25
    while True:
        try:
            return _finish_once(outcomes, status, values)
        except DATABASE_ERRORS as exc:
            if clock() + delay > deadline:
                raise
            log.warning("%d outcome(s) not written yet (%s); retrying", len(outcomes), type(exc).__name__)
            time.sleep(delay)
            delay = min(2 * delay, OUTCOME_RETRY_MAX_DELAY_S)


def _finish_once(outcomes: Sequence[tuple[JobRun, Record | None]], status: JobStatus, values: dict[str, Any]) -> list[bool]:
    """One transaction for all; a job found no longer ours rolls it back (its records with
    it), drops out, and the rest go again without it."""
    ended = {run.job_id: False for run, _ in outcomes}
    pending = list(outcomes)
    while pending:
        with session_scope() as session:
            lost = _record_and_finish(session, pending, status, values)
            if lost is None:
                ended.update((run.job_id, True) for run, _ in pending)
                break
            session.rollback()  # record nothing
            # A retry after a commit whose answer was lost finds its own outcome there.
            ended[lost.job_id] = repository.attempt_state(session, lost.kind.model, lost.job_id) == (status, lost.attempt)
        lost.lost = not ended[lost.job_id]
        pending = [(run, record) for run, record in pending if run is not lost]
    return [ended[run.job_id] for run, _ in outcomes]


def _record_and_finish(session: Session, outcomes: Sequence[tuple[JobRun, Record | None]], status: JobStatus,
                       values: dict[str, Any]) -> JobRun | None:
    """Each job's records, then its final state; the first job that is not ours any more, or None."""
    for run, record in outcomes:
        if record is not None:
            record(session)  # first: the job's row may refer to what it records
        if not lifecycle.finish(session, run.kind, run.job_id, status, attempt=run.attempt, **values):
            return run
    return None


class Heartbeats:
    """Beats every job this process holds, every job_heartbeat_s, from one thread: also
    through the long silent stretches (model loads, class images, validation)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], JobRun] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, run: JobRun) -> Iterator[JobRun]:
        with self._lock:
            self._runs[(run.kind.name, run.job_id)] = run
            if self._thread is None or not self._thread.is_alive():  # also in a forked child
                self._thread = threading.Thread(target=self._beat_forever, name="job-heartbeats", daemon=True)
                self._thread.start()
        try:
            yield run
        finally:
            with self._lock:
                self._runs.pop((run.kind.name, run.job_id), None)

    def beat(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
        if not runs:
            return
        with session_scope() as session:
            for run in runs:
                ours = repository.transition(session, run.kind.model, run.job_id, repository.RUNNING, run.attempt,
                                             heartbeat_at=utcnow())
                run.lost = run.lost or not ours

    def _beat_forever(self) -> None:
        while True:
            time.sleep(get_settings().job_heartbeat_s)
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - a missed beat; staleness needs several
                log.warning("heartbeat not written (%s: %s)", type(exc).__name__, exc)


heartbeats = Heartbeats()
