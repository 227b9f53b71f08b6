from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class CreditsOut(BaseModel):
    balance: int
    free_remaining: int
    free_resets_at: datetime
