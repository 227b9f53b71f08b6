"""What the worker reads and writes for a fine-tune, beyond the job layer's lifecycle
(app/jobs): its plan, its phases and progress with an ETA, and the personal model it makes.

Pure database and file bookkeeping (no torch), so it can be tested without training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app import storage
from app.db import session_scope
from app.jobs.running import JobRun
from app.model_base import utcnow
from app.personalization import repository
from app.personalization.models import FinetunePhase, ModelKind, TrainedModel

log = logging.getLogger(__name__)
TRAINING_SHARE = 0.95  # of the progress bar; validation and export take the rest


@dataclass(frozen=True)
class RunPlan:
    """What the task needs to train one job, read once at the start."""

    finetune_id: str
    user_id: str
    subject_name: str
    token: str
    class_noun: str
    images: list[Path]
    overrides: dict[str, Any]
    work_dir: Path  # stable per job: a job run again resumes from its checkpoints
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


def plan(job: JobRun) -> RunPlan:
    """The claimed job's plan; the job enters the `preparing` phase."""
    with session_scope() as session:
        finetune = repository.finetune_by_id(session, job.job_id)
        assert finetune is not None  # claimed: it exists
        subject = repository.subject_of(session, finetune.user_id, finetune.subject_id)
        assert subject is not None  # a subject's fine-tunes are deleted with it
        photos = repository.photos_of(session, subject.id)
        result = RunPlan(
            finetune_id=finetune.id, user_id=finetune.user_id, subject_name=subject.name, token=subject.token,
            class_noun=subject.class_noun, images=[storage.resolve(p.path) for p in photos],
            overrides=dict(finetune.config or {}), work_dir=storage.resolve(work_path(finetune.id)),
            out_dir=storage.resolve(model_path(finetune.user_id, finetune.id)), model_id=finetune.id,
            attempt=job.attempt,
        )
    job.report(force=True, phase=FinetunePhase.PREPARING, checkpoint_dir=work_path(job.job_id))
    return result


@dataclass
class ProgressReporter:
    """The training hooks' database side: phase, step, ETA, and the step a resumed run began
    at; written at most once per the kind's progress_every_s (phases at once)."""

    job: JobRun
    total_steps: int
    clock: Callable[[], float] = time.monotonic
    _run_start: tuple[float, int] | None = field(default=None)  # (time, step) of this run's first step

    def start(self) -> None:
        self.job.report(force=True, total_steps=self.total_steps, step=0, progress=0.0)

    def phase(self, phase: str) -> None:
        if phase == FinetunePhase.DONE:
            return  # `succeed` writes it together with the model row
        values: dict[str, Any] = {"phase": FinetunePhase(phase)}
        if phase == FinetunePhase.VALIDATING:
            values.update(progress=TRAINING_SHARE, step=self.total_steps)
        self.job.report(force=True, **values)

    def progress(self, step: int, total: int) -> None:
        now = self.clock()
        first = self._run_start is None
        if self._run_start is None:
            self._run_start = (now, step)
        values: dict[str, Any] = {
            "step": step, "total_steps": total, "progress": round(TRAINING_SHARE * step / max(total, 1), 4),
        }
        if first and step > 1:
            values["resumed_from_step"] = step  # continued from a checkpoint, not from step 0
            log.info("fine-tune %s resumed at step %d of %d", self.job.job_id, step, total)
        eta = self._eta_seconds(now, step, total)
        if eta is not None:
            values["expected_finish_at"] = utcnow() + timedelta(seconds=eta)
        self.job.report(force=first or step >= total, **values)

    def checkpoints(self, summary: dict[str, Any]) -> None:
        """Each scored checkpoint and the step chosen so far (best_step.summary), shown as it comes."""
        self.job.report(force=True, checkpoint_scores=summary)

    def _eta_seconds(self, now: float, step: int, total: int) -> float | None:
        assert self._run_start is not None
        start_time, start_step = self._run_start
        if step <= start_step or now <= start_time:
            return None
        return (total - step) * (now - start_time) / (step - start_step)


def succeed(job: JobRun, plan: RunPlan, card: dict[str, Any], base_model: Path) -> bool:
    """Record the personal model and end the job, in one transaction; False (and no model)
    when the job was canceled meanwhile."""

    def record(session: Session) -> None:
        if repository.trained_model(session, plan.model_id) is None:
            session.add(TrainedModel(
                id=plan.model_id, user_id=plan.user_id, name=plan.subject_name[:100], kind=ModelKind.PERSONAL,
                token=plan.token, class_noun=plan.class_noun, method=card.get("method"),
                path=plan.out_relative, metrics={**card, "base_model": str(base_model)},
            ))
            session.flush()

    return job.succeed(record, phase=FinetunePhase.DONE, trained_model_id=plan.model_id, expected_finish_at=None)
