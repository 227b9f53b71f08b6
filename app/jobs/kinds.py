"""The kinds of job: what the job layer needs to know about each, in one place.

The task name, its queue and the credit reference all derive from the kind's name, so the web
(which sends by name), the worker (which registers the task) and Celery's routes cannot
disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.generation import notify, scheduling
from app.generation.models import Generation
from app.generation.views import generation_view
from app.personalization.models import Finetune, FinetunePhase
from app.personalization.views import finetune_view

JobRow = Generation | Finetune
INFERENCE_QUEUE = "inference"
TRAINING_QUEUE = "training"
QUEUES = (INFERENCE_QUEUE, TRAINING_QUEUE)


def _no_announcement(job_id: str) -> None:
    """Fine-tunes have no long-poll to wake."""


def _in_arrival_order(session: Any, job: Any, priority: int) -> None:
    """Fine-tunes run in the order they came (one at a time, minutes each)."""


@dataclass(frozen=True)
class JobKind:
    name: str  # "generation": task "generation.run", credits reference "generation:<id>"
    model: type[JobRow]
    view: Callable[[Any], BaseModel]  # the job as the API shows it (also what webhook events carry)
    queue: str
    progress_every_s: float  # at most one progress write, and one cancel check, per this
    max_attempts: int  # a job whose worker died this many times fails (and is refunded)
    requeue_values: dict[str, Any] = field(default_factory=dict)  # reset when queued again
    announce: Callable[[str], None] = _no_announcement  # after a committed change
    # Puts a new job in its queue's order, given its owner's priority (at submit, before the write).
    place: Callable[[Any, Any, int], None] = _in_arrival_order

    @property
    def task(self) -> str:
        return f"{self.name}.run"

    def reference(self, job_id: str) -> str:
        return f"{self.name}:{job_id}"


# Progress: the browser's bar wants several updates a second for a job of seconds; a fine-tune
# runs for minutes. Attempts: a generation is cheap to retry, a fine-tune resumes from its
# checkpoint, so each retry costs it less.
GENERATION = JobKind(
    name="generation", model=Generation, view=generation_view, queue=INFERENCE_QUEUE, progress_every_s=0.15, max_attempts=3,
    requeue_values={"progress": 0.0}, announce=notify.job_changed, place=scheduling.place,
)
FINETUNE = JobKind(
    name="finetune", model=Finetune, view=finetune_view, queue=TRAINING_QUEUE, progress_every_s=1.0, max_attempts=5,
    requeue_values={"phase": FinetunePhase.QUEUED, "expected_finish_at": None},
)
KINDS = (GENERATION, FINETUNE)


def task_routes() -> dict[str, dict[str, str]]:
    return {kind.task: {"queue": kind.queue} for kind in KINDS}
