"""A fine-tune as the API shows it (the routes, and the events webhooks send)."""

from __future__ import annotations

from datetime import datetime

from app.model_base import utcnow
from app.personalization.models import Finetune
from app.personalization.schemas import FinetuneOut


def finetune_view(finetune: Finetune, now: datetime | None = None) -> FinetuneOut:
    scores = finetune.checkpoint_scores or {}
    return FinetuneOut(
        id=finetune.id, subject_id=finetune.subject_id, status=finetune.status, phase=finetune.phase,
        progress=finetune.progress, step=finetune.step, total_steps=finetune.total_steps,
        eta_seconds=_eta_seconds(finetune, now or utcnow()), model_id=finetune.trained_model_id,
        error=finetune.error, cost=finetune.cost, attempts=finetune.attempts,
        resumed_from_step=finetune.resumed_from_step, checkpoints=scores.get("checkpoints", []),
        chosen_step=scores.get("chosen_step"), checkpoint_rule=scores.get("rule"), created_at=finetune.created_at,
        started_at=finetune.started_at, finished_at=finetune.finished_at,
    )


def _eta_seconds(finetune: Finetune, now: datetime) -> float | None:
    if finetune.status.is_final:
        return 0.0
    if finetune.expected_finish_at is None:
        return None  # not measured yet (queued, or still loading the model)
    return round(max(0.0, (finetune.expected_finish_at - now).total_seconds()), 1)
