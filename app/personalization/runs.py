"""A fine-tune's life on the worker: claim, progress, heartbeat, outcome, and the sweep.

Pure database and file bookkeeping (no torch), so it can be tested without training. Every
write is a short transaction of its own and is conditional on the job still running: a
cancel from the web process always wins over a late progress report or a late success.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from app import storage
from app.config import get_settings
from app.db import session_scope
from app.model_base import JobStatus, utcnow
from app.personalization import repository, service
from app.personalization.models import FinetunePhase, ModelKind, TrainedModel

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 1.0  # at most one progress row update per second
CANCEL_CHECK_INTERVAL_S = 1.0  # and one status read
TRAINING_SHARE = 0.95  # of the progress bar; validation and export take the rest
RUNNING = (JobStatus.RUNNING,)


@dataclass(frozen=True)
class RunPlan:
    """What the task needs to train one job, read once at the start."""

    finetune_id: str
    user_id: str
    subject_name: str
    token: str
    class_noun: str
    images: list[Path]
    overrides: dict
    work_dir: Path  # stable per job: a re-delivered task resumes from its checkpoints
    out_dir: Path
    model_id: str  # the personal model's id is the job's: a repeated insert cannot happen
    attempt: int

    @property
    def out_relative(self) -> str:
        return model_path(self.user_id, self.model_id)


def work_path(finetune_id: str) -> str:
    return f"finetunes/{finetune_id}/work"


def model_path(user_id: str, model_id: str) -> str:
    return f"models/{user_id}/{model_id}"


def stale_before(now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(seconds=get_settings().finetune_stale_after_s)


def heartbeat_interval_s() -> float:
    return min(15.0, max(0.2, get_settings().finetune_stale_after_s / 4))


# --- start ------------------------------------------------------------------------------
def claim(finetune_id: str) -> RunPlan | None:
    """The job's plan if this worker may run it now; None for a finished job, a missing one,
    or one that another live worker holds (a duplicate delivery)."""
    now = utcnow()
    with session_scope() as session:
        finetune = repository.finetune_by_id(session, finetune_id)
        if finetune is None or finetune.status.is_final:
            return None
        if not repository.claim(session, finetune_id, stale_before(now), now):
            log.info("fine-tune %s is running on a live worker; this delivery does nothing", finetune_id)
            return None
        finetune = repository.finetune_by_id(session, finetune_id)
        subject = repository.subject_of(session, finetune.user_id, finetune.subject_id)
        photos = repository.photos_of(session, subject.id)
        finetune.phase = FinetunePhase.PREPARING
        finetune.checkpoint_dir = work_path(finetune.id)
        return RunPlan(
            finetune_id=finetune.id, user_id=finetune.user_id, subject_name=subject.name, token=subject.token,
            class_noun=subject.class_noun, images=[storage.resolve(p.path) for p in photos],
            overrides=dict(finetune.config or {}), work_dir=storage.resolve(work_path(finetune.id)),
            out_dir=storage.resolve(model_path(finetune.user_id, finetune.id)), model_id=finetune.id,
            attempt=finetune.attempts,
        )


# --- while it runs ----------------------------------------------------------------------
@dataclass
class ProgressReporter:
    """The training hooks' database side, throttled: phase, step, ETA, cancel checks."""

    finetune_id: str
    total_steps: int
    clock: Callable[[], float] = time.monotonic
    _last_write: float = field(default=-1e9)
    _last_check: float = field(default=-1e9)
    _canceled: bool = False
    _run_start: tuple[float, int] | None = None  # (time, step) of this run's first step

    def start(self) -> None:
        self._update(total_steps=self.total_steps, step=0, progress=0.0)

    def phase(self, phase: str) -> None:
        if phase == FinetunePhase.DONE:
            return  # `succeed` writes it together with the model row
        values = {"phase": FinetunePhase(phase)}
        if phase == FinetunePhase.VALIDATING:
            values.update(progress=TRAINING_SHARE, step=self.total_steps)
        self._update(**values)

    def progress(self, step: int, total: int) -> None:
        now = self.clock()
        first = self._run_start is None
        if first:
            self._run_start = (now, step)
        if not first and step < total and now - self._last_write < PROGRESS_WRITE_INTERVAL_S:
            return
        self._last_write = now
        values = {"step": step, "total_steps": total, "progress": round(TRAINING_SHARE * step / max(total, 1), 4)}
        if first and step > 1:
            values["resumed_from_step"] = step  # continued from a checkpoint, not from step 0
            log.info("fine-tune %s resumed at step %d of %d", self.finetune_id, step, total)
        eta = self._eta_seconds(now, step, total)
        if eta is not None:
            values["expected_finish_at"] = utcnow() + timedelta(seconds=eta)
        self._update(**values)

    def should_cancel(self) -> bool:
        now = self.clock()
        if not self._canceled and now - self._last_check >= CANCEL_CHECK_INTERVAL_S:
            self._last_check = now
            with session_scope() as session:
                self._canceled = repository.status_of(session, self.finetune_id) == JobStatus.CANCELED
        return self._canceled

    def _eta_seconds(self, now: float, step: int, total: int) -> float | None:
        start_time, start_step = self._run_start
        if step <= start_step or now <= start_time:
            return None
        seconds_per_step = (now - start_time) / (step - start_step)
        return (total - step) * seconds_per_step

    def _update(self, **values) -> None:
        with session_scope() as session:
            repository.update_where(session, self.finetune_id, RUNNING, heartbeat_at=utcnow(), **values)


class Heartbeat:
    """Touches the job's heartbeat from a thread while the task runs, also through the
    long silent stretches (loading the model, drawing class images, validation)."""

    def __init__(self, finetune_id: str, interval_s: float | None = None) -> None:
        self.finetune_id = finetune_id
        self.interval_s = interval_s or heartbeat_interval_s()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{finetune_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with session_scope() as session:
                    repository.update_where(session, self.finetune_id, RUNNING, heartbeat_at=utcnow())
            except Exception:
                log.warning("heartbeat for fine-tune %s failed", self.finetune_id, exc_info=True)


# --- outcome ----------------------------------------------------------------------------
class _LostRace(Exception):
    pass


def succeed(plan: RunPlan, card: dict, base_model: Path) -> bool:
    """Record the personal model and finish the job, in one transaction; False (and no
    model) when the job was canceled meanwhile."""
    try:
        with session_scope() as session:
            if repository.trained_model(session, plan.model_id) is None:
                session.add(TrainedModel(
                    id=plan.model_id, user_id=plan.user_id, name=plan.subject_name[:100], kind=ModelKind.PERSONAL,
                    token=plan.token, class_noun=plan.class_noun, method=card.get("method"),
                    path=plan.out_relative, metrics={**card, "base_model": str(base_model)},
                ))
                session.flush()
            won = repository.update_where(
                session, plan.finetune_id, RUNNING, status=JobStatus.SUCCEEDED, phase=FinetunePhase.DONE,
                progress=1.0, trained_model_id=plan.model_id, finished_at=utcnow(), expected_finish_at=None,
                heartbeat_at=utcnow(),
            )
            if not won:
                raise _LostRace
            service.settle(session, repository.finetune_by_id(session, plan.finetune_id))
    except _LostRace:
        return False
    return True


def fail(finetune_id: str, message: str) -> bool:
    return _finish(finetune_id, JobStatus.FAILED, error=message[:1000])


def canceled(finetune_id: str) -> bool:
    return _finish(finetune_id, JobStatus.CANCELED)


def _finish(finetune_id: str, status: JobStatus, **values) -> bool:
    with session_scope() as session:
        won = repository.update_where(session, finetune_id, RUNNING, status=status, finished_at=utcnow(),
                                      expected_finish_at=None, **values)
        if won:
            service.settle(session, repository.finetune_by_id(session, finetune_id))
        return won


# --- recovery ---------------------------------------------------------------------------
def requeue_stale() -> list[str]:
    """Jobs whose worker died (running, heartbeat stale) go back to queued; the caller
    enqueues the returned ids. Several workers may sweep at once: each job goes to one."""
    cutoff = stale_before()
    requeued = []
    with session_scope() as session:
        for finetune_id in repository.stale_running_ids(session, cutoff):
            if repository.requeue_if_stale(session, finetune_id, cutoff):
                requeued.append(finetune_id)
    return requeued
