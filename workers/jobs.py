"""The worker side of the job layer: `job_task` (one job per message) and `batch_job_task`
(messages wake a worker that claims batches of jobs) state a task's policy once, and the
reconciler runs here on a timer.

    @job_task(FINETUNE, failure="Training failed")
    def run(job: JobRun) -> str: ...

gives the Celery task `finetune.run(job_id)` that
1. claims the job (nothing to do when it is unknown, has ended, or a live worker holds it);
   a database outage here retries the message with back-off instead of acknowledging it into
   the void;
2. runs the body with the job's heartbeat held; the body reports progress, checks for a
   cancel and records its outcome through the `JobRun`;
3. turns any failure into a readable message on the job (and a refund). A database or broker
   outage that outlasts the job layer's own retries leaves the job running with no heartbeat:
   the reconciler queues it again, so it ends exactly once.
Tasks are acknowledged late, and rejected (re-queued) when a pool child dies: a re-delivery
costs nothing, since only a queued job can be claimed. `@batch_job_task(GENERATION, gather=...)`
does the same for each job of a batch (`def run(jobs: list[JobRun])`), see its docstring.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

import redis
from celery import Task
from celery.signals import worker_ready, worker_shutting_down
from kombu.exceptions import OperationalError as BrokerError

from app.config import get_settings
from app.jobs import reconciler
from app.jobs.kinds import JobKind
from app.jobs.running import DATABASE_ERRORS, JobRun, JobStopped, claim_all, heartbeats
from workers.celery_app import app

log = logging.getLogger(__name__)
OUTAGE_ERRORS = (*DATABASE_ERRORS, redis.RedisError, BrokerError)
MAX_ERROR_CHARS = 500
CLAIM_RETRY_MAX_S = 5.0  # a claim waits out a database outage in steps of at most this
KnownErrors = dict[type[Exception], Callable[[Exception], str]]
T = TypeVar("T")


def job_task(kind: JobKind, failure: str, known_errors: KnownErrors | None = None) -> Callable[[Callable[[JobRun], str]], Task]:
    """Register `body` as the task of `kind`, run on the job its message names. `failure`
    starts the message of an unexpected error; `known_errors` maps exception types to the
    message their owner should read."""

    def register(body: Callable[[JobRun], str]) -> Task:
        @app.task(name=kind.task, **TASK_POLICY)
        def task(self: Task, job_id: str) -> str:
            runs = _claim_or_retry(self, kind, job_id, lambda: claim_all(kind, [job_id]))
            if not runs:
                log.info("%s %s: nothing to do (unknown, ended, or held by another worker)", kind.name, job_id)
                return "skipped"
            return _run_guarded(kind, runs, lambda claimed: body(claimed[0]), failure, known_errors or {})

        return task

    return register


def batch_job_task(kind: JobKind, failure: str, gather: Callable[[], list[str]],
                   known_errors: KnownErrors | None = None) -> Callable[[Callable[[list[JobRun]], str]], Task]:
    """Register `body` as the task of `kind`, run on batches of jobs: its messages are wake-ups.

    Each message claims the jobs `gather()` picks (ids, the first to run first), runs `body`
    on them, and goes on with the next batch until nothing is queued (or the worker shuts
    down). The job a message names may have run in an earlier batch: its message then finds
    the queue empty. A message is never needed for its own job, so none that is lost, late or
    duplicated can strand or repeat one; every job still has its own claim, heartbeat,
    outcome and settlement, exactly as with `job_task`."""

    def register(body: Callable[[list[JobRun]], str]) -> Task:
        @app.task(name=kind.task, **TASK_POLICY)
        def task(self: Task, job_id: str) -> str:
            outcome = "skipped"
            while not _shutting_down.is_set():
                job_ids = _claim_or_retry(self, kind, job_id, gather)
                if not job_ids:
                    break
                runs = _claim_or_retry(self, kind, job_id, functools.partial(claim_all, kind, job_ids))
                if runs:  # else another worker took them all first: gather again
                    outcome = _run_guarded(kind, runs, body, failure, known_errors or {})
            return outcome

        return task

    return register


# Acknowledged late and rejected (re-queued) when a pool child dies; retried without end
# while the database is away (a claim is cheap and idempotent).
TASK_POLICY = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "ignore_result": True,
               "max_retries": None}
_shutting_down = threading.Event()


@worker_shutting_down.connect
def _stop_draining(**_: object) -> None:
    _shutting_down.set()  # a batch task ends after the batch it runs, so warm shutdown is prompt


def _claim_or_retry(task: Task, kind: JobKind, job_id: str, step: Callable[[], T]) -> T:
    """1. claim: a database outage retries the message with back-off instead of acknowledging
    it into the void."""
    try:
        return step()
    except DATABASE_ERRORS as exc:
        log.warning("%s %s: cannot claim yet (%s); retrying", kind.name, job_id, type(exc).__name__)
        raise task.retry(exc=exc, countdown=min(2.0 ** task.request.retries, CLAIM_RETRY_MAX_S)) from exc


def _run_guarded(kind: JobKind, runs: list[JobRun], body: Callable[[list[JobRun]], str], failure: str,
                 known_errors: KnownErrors) -> str:
    """2. the body, with every job's heartbeat held; 3. its failures, recorded on each job."""
    names = ",".join(run.job_id for run in runs)
    with ExitStack() as held:
        for run in runs:
            held.enter_context(heartbeats.holding(run))
        try:
            return body(runs)
        except JobStopped:
            log.info("%s %s: stopped (canceled, or given to another worker)", kind.name, names)
            return "stopped"
        except OUTAGE_ERRORS as exc:
            log.error("%s %s: interrupted by an outage (%s); the reconciler queues it again",
                      kind.name, names, type(exc).__name__, exc_info=True)
            return "interrupted"
        except Exception as exc:
            message = readable_error(exc, failure, known_errors)
            log.warning("%s %s failed: %s", kind.name, names, message, exc_info=True)
            recorded = [_record_failure(run, message) for run in runs if not run.lost]
            return "failed" if any(recorded) else "stopped"


def _record_failure(job: JobRun, message: str) -> bool:
    try:
        return job.fail(message)
    except OUTAGE_ERRORS as exc:  # outlasted the outcome's retries: the reconciler's now
        log.error("%s %s: failure not recorded (%s); the reconciler queues it again", job.kind.name, job.job_id,
                  type(exc).__name__)
        return False


def readable_error(exc: Exception, failure: str, known_errors: KnownErrors) -> str:
    """What the job's owner reads: a known error's own message, else `failure` with the
    error's type and first line (paths and stack stay in the worker's log)."""
    for error_type, describe in known_errors.items():
        if isinstance(exc, error_type):
            return describe(exc)[:MAX_ERROR_CHARS]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{failure}: {type(exc).__name__}{': ' + text if text else ''}"[:MAX_ERROR_CHARS]


# --- the reconciler, in every worker ------------------------------------------------------
def _reconcile_forever() -> None:
    while True:
        reconciler.reconcile()
        time.sleep(get_settings().job_reconcile_every_s)


@worker_ready.connect
def _start_reconciler(**_: object) -> None:
    """At start (jobs a dead worker or a lost message left behind are repaired first) and then
    every job_reconcile_every_s."""
    threading.Thread(target=_reconcile_forever, name="job-reconciler", daemon=True).start()
