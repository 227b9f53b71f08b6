"""Request and response bodies of the webhook routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.generation.schemas import GenerationOut
from app.personalization.schemas import FinetuneOut
from app.validation import Line
from app.webhooks.models import MAX_URL_CHARS, DeliveryStatus

DEFAULT_DELIVERIES = 20
MAX_DELIVERIES = 100
EVENT_TYPES = [f"{kind}.{outcome}" for kind in ("generation", "finetune") for outcome in ("succeeded", "failed", "canceled")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Line = Field(min_length=1, max_length=MAX_URL_CHARS, description="http(s) URL that receives the events")


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    created_at: datetime
    events: list[str] = Field(default_factory=lambda: list(EVENT_TYPES))


class WebhookCreated(WebhookEndpointOut):
    secret: str = Field(description="signs every delivery (ImageBooth-Signature); shown only now")


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None = Field(description="the endpoint's HTTP status; null when it gave no answer")
    error: str | None = Field(description="why the attempt did not count as delivered; null for a 2xx")
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    type: str = Field(validation_alias="event_type", description="e.g. generation.succeeded")
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


# --- what endpoints receive (documented under the OpenAPI document's "webhooks") -------------
class GenerationEvent(BaseModel):
    id: str = Field(description="evt_..., the same on every attempt (deduplicate on it)")
    type: Literal["generation.succeeded", "generation.failed", "generation.canceled"]
    created: int = Field(description="when the job ended, unix seconds")
    data: GenerationOut = Field(description="the job as GET /api/v1/generations/{id} shows it")


class FinetuneEvent(BaseModel):
    id: str = Field(description="evt_..., the same on every attempt (deduplicate on it)")
    type: Literal["finetune.succeeded", "finetune.failed", "finetune.canceled"]
    created: int = Field(description="when the job ended, unix seconds")
    data: FinetuneOut = Field(description="the job as GET /api/v1/finetunes/{id} shows it")
