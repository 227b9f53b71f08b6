"""Response bodies of the catalog routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ModelPrices(BaseModel):
    """Credits per picture for each speed profile at its default steps (app/credits/pricing.py)."""

    fast: int
    quality: int


class ModelOut(BaseModel):
    id: str
    name: str
    kind: str  # "base" | "personal"
    token: str | None = None
    class_noun: str | None = None
    base_model_id: str | None = None
    created_at: datetime
    cost_per_picture: ModelPrices | None = None
