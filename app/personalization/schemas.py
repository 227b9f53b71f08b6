"""Request and response bodies for subjects and fine-tunes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.catalog.schemas import WarningOut
from app.model_base import JobStatus
from app.personalization.models import FinetunePhase

MAX_FINETUNE_STEPS = 2000
MAX_LISTED_FINETUNES = 100
CLASS_NOUN_MAX_CHARS = 40
SUBJECT_NAME_MAX_CHARS = 100
# Words of letters (any alphabet) separated by single spaces or hyphens: "dog", "teddy bear",
# "t-shirt". The noun goes into prompts, so digits and punctuation are refused.
CLASS_NOUN_PATTERN = re.compile(r"^[^\W\d_]+(?:[ -][^\W\d_]+)*$")


class SubjectOut(BaseModel):
    id: str
    name: str
    class_noun: str
    token: str
    photo_count: int
    created_at: datetime


class SubjectCreated(SubjectOut):
    warnings: list[WarningOut] = Field(description="a class noun the base model does not know (it still trains)")


class SubjectList(BaseModel):
    items: list[SubjectOut]


class FinetuneRequest(BaseModel):
    """Per-job overrides of the base model's preset; anything left out keeps the preset."""

    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(None, ge=1, le=MAX_FINETUNE_STEPS)
    method: Literal["full", "lora"] | None = None
    prior_preservation: bool | None = None

    def overrides(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


class FinetuneCreated(BaseModel):
    id: str
    status: JobStatus
    cost: int


class CheckpointOut(BaseModel):
    step: int
    scores: dict[str, float] = Field(description="heldout_loss, prior_drift; subject_fidelity, language_drift "
                                                 "on the bundled model (see the README, Best step)")


class FinetuneOut(BaseModel):
    id: str
    subject_id: str
    status: JobStatus
    phase: FinetunePhase
    progress: float
    step: int
    total_steps: int
    eta_seconds: float | None = None
    model_id: str | None = None
    error: str | None = None
    cost: int
    attempts: int
    resumed_from_step: int | None = None
    checkpoints: list[CheckpointOut] = Field(default_factory=list, description="each scored checkpoint so far")
    chosen_step: int | None = Field(None, description="the checkpoint the model is (or will be) exported from")
    checkpoint_rule: str | None = Field(None, description="how chosen_step was chosen")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class FinetuneList(BaseModel):
    items: list[FinetuneOut]
