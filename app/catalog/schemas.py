"""Response bodies of the catalog routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ModelOut(BaseModel):
    id: str
    name: str
    kind: str  # "base" | "personal"
    token: str | None = None
    class_noun: str | None = None
    base_model_id: str | None = None
    created_at: datetime
