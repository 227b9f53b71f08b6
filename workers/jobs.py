"""The worker side of the job layer: `job_task` states a task's policy once, and the
reconciler runs here on a timer.

    @job_task(GENERATION, known_errors={RequestError: ...}, failure="Generation failed")
    def run(job: JobRun) -> str: ...

gives the Celery task `generation.run(job_id)` that
1. claims the job (nothing to do when it is unknown, has ended, or a live worker holds it);
   a database outage here retries the message with back-off instead of acknowledging it into
   the void;
2. runs the body with the job's heartbeat held; the body reports progress, checks for a
   cancel and records its outcome through the `JobRun`;
3. turns any failure into a readable message on the job (and a refund). A database or broker
   outage that outlasts the job layer's own retries leaves the job running with no heartbeat:
   the reconciler queues it again, so it ends exactly once.
Tasks are acknowledged late, and rejected (re-queued) when a pool child dies: a re-delivery
costs nothing, since only a queued job can be claimed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from celery import Task
from celery.signals import worker_ready
from kombu.exceptions import OperationalError as BrokerError

from app.config import get_settings
from app.jobs import reconciler
from app.jobs.kinds import JobKind
from app.jobs.running import DATABASE_ERRORS, JobRun, JobStopped, claim, heartbeats
from workers.celery_app import app

log = logging.getLogger(__name__)
OUTAGE_ERRORS = (*DATABASE_ERRORS, redis.RedisError, BrokerError)
MAX_ERROR_CHARS = 500
CLAIM_RETRY_MAX_S = 5.0  # a claim waits out a database outage in steps of at most this
KnownErrors = dict[type[Exception], Callable[[Exception], str]]


def job_task(kind: JobKind, failure: str, known_errors: KnownErrors | None = None) -> Callable[[Callable[[JobRun], str]], Task]:
    """Register `body` as the task of `kind`. `failure` starts the message of an unexpected
    error; `known_errors` maps exception types to the message their owner should read."""

    def register(body: Callable[[JobRun], str]) -> Task:
        @app.task(name=kind.task, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
                  max_retries=None)
        def task(self: Task, job_id: str) -> str:
            # 1. claim
            try:
                job = claim(kind, job_id)
            except DATABASE_ERRORS as exc:
                log.warning("%s %s: cannot claim yet (%s); retrying", kind.name, job_id, type(exc).__name__)
                raise self.retry(exc=exc, countdown=min(2.0 ** self.request.retries, CLAIM_RETRY_MAX_S)) from exc
            if job is None:
                log.info("%s %s: nothing to do (unknown, ended, or held by another worker)", kind.name, job_id)
                return "skipped"
            # 2. the body, 3. its failures
            with heartbeats.holding(job):
                try:
                    return body(job)
                except JobStopped:
                    log.info("%s %s: stopped (canceled, or given to another worker)", kind.name, job_id)
                    return "stopped"
                except OUTAGE_ERRORS as exc:
                    log.error("%s %s: interrupted by an outage (%s); the reconciler queues it again",
                              kind.name, job_id, type(exc).__name__, exc_info=True)
                    return "interrupted"
                except Exception as exc:
                    message = readable_error(exc, failure, known_errors or {})
                    log.warning("%s %s failed: %s", kind.name, job_id, message, exc_info=True)
                    return "failed" if _record_failure(job, message) else "stopped"

        return task

    return register


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
