"""Request and response bodies of the generation routes.

The ranges are app/generation/limits.py's, which the engine checks too: bad input is refused
at the edge with a 422 naming the field, before a job or a charge exists.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
)

from app.generation.limits import (
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    Profile,
)
from app.validation import Line, Text

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_WAIT_S = 25.0


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Text = Field(max_length=MAX_PROMPT_CHARS)
    negative_prompt: Text = Field(default="", max_length=MAX_PROMPT_CHARS)
    # Strict: "3", 3.0 or true are not image counts, step counts or seeds.
    n: StrictInt = Field(default=1, ge=1, le=MAX_IMAGES)
    steps: StrictInt | None = Field(default=None, ge=1, le=MAX_STEPS)
    guidance_scale: StrictFloat | None = Field(default=None, ge=0, le=MAX_GUIDANCE)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    model: Line | None = Field(default=None, min_length=1, max_length=64)
    profile: Profile = "fast"

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value


class GenerationCreated(BaseModel):
    id: str
    status: str
    cost: int


class ImageOut(BaseModel):
    id: str
    index: int
    seed: int
    url: str
    width: int
    height: int


class GenerationOut(BaseModel):
    id: str
    status: str
    progress: float
    queue_position: int | None = None
    images: list[ImageOut]
    error: str | None = None
    prompt: str
    negative_prompt: str
    n: int
    steps: int | None
    guidance_scale: float | None
    seed: int | None
    model: str
    profile: str
    cost: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class GenerationPage(BaseModel):
    items: list[GenerationOut]
    next_cursor: str | None = None
