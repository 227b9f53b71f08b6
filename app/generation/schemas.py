"""Request and response bodies of the generation routes.

The ranges are app/generation/limits.py's, which the engine checks too: bad input is refused
at the edge with a 422 naming the field, before a job or a charge exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from app.catalog.schemas import WarningOut
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


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


# the one text rule (app/validation.py), at most MAX_PROMPT_CHARS, and more than whitespace
PromptText = Annotated[Text, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(_has_text)]


class GenerationCreate(BaseModel):
    """`prompt` for n pictures, or `prompts`: one picture each (n is then their number)."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptText | None = Field(default=None, description="the prompt of all n pictures")
    prompts: list[PromptText] | None = Field(
        default=None, min_length=1, max_length=MAX_IMAGES, validate_default=True,
        description="one prompt per picture, instead of prompt and n")
    negative_prompt: Text = Field(default="", max_length=MAX_PROMPT_CHARS)
    # Strict: "3", 3.0 or true are not image counts, step counts or seeds.
    n: StrictInt = Field(default=1, ge=1, le=MAX_IMAGES)
    steps: StrictInt | None = Field(default=None, ge=1, le=MAX_STEPS)
    guidance_scale: StrictFloat | None = Field(default=None, ge=0, le=MAX_GUIDANCE)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    model: Line | None = Field(default=None, min_length=1, max_length=64)
    profile: Profile = "fast"

    @field_validator("prompts")
    @classmethod
    def _one_prompt_or_a_list(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if "prompt" not in info.data:  # the prompt itself was refused; that is the error
            return value
        if value is None and info.data["prompt"] is None:
            raise ValueError("give a prompt, or prompts (a list, one picture each)")
        if value is not None and info.data["prompt"] is not None:
            raise ValueError("give a prompt or prompts, not both")
        return value

    @field_validator("n")
    @classmethod
    def _n_is_the_list_length(cls, value: int, info: ValidationInfo) -> int:
        # only an n actually sent is checked (a default is never validated): it must agree
        prompts = info.data.get("prompts")
        if prompts is not None and value != len(prompts):
            raise ValueError(f"with a prompt list n is its length ({len(prompts)}); leave n out")
        return value

    def pictures(self) -> int:
        return len(self.prompts) if self.prompts is not None else self.n


class GenerationCreated(BaseModel):
    id: str
    status: str
    cost: int
    warnings: list[WarningOut] = Field(
        description="words the model does not know (the job still runs); empty without a vocabulary")


class ImageOut(BaseModel):
    id: str
    index: int
    prompt: str  # its own prompt, for a prompt list
    seed: int
    url: str
    width: int
    height: int


class GenerationOut(BaseModel):
    id: str
    status: str
    progress: float
    queue_position: int | None = Field(
        None, description="while queued: 1 for the next job to run (premium first, then users in turns)")
    estimated_wait_s: float | None = Field(
        None, description="while queued: seconds until it is expected to start, from the worker's measured step "
                          "times (null until a batch has been measured)")
    images: list[ImageOut]
    error: str | None = None
    prompt: str = Field(description="the prompt, or the first of a prompt list")
    prompts: list[str] | None = Field(None, description="the prompt list, one per picture; null for one prompt")
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
