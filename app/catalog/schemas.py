"""Response bodies of the catalog routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.catalog.vocabulary import Hint, Vocabulary
from app.validation import Line, Text

MAX_CHECKED_PROMPTS = 8
MAX_CHECKED_CHARS = 1000


class ModelPrices(BaseModel):
    """Credits per picture for each speed profile at its default steps (app/credits/pricing.py)."""

    fast: int
    quality: int


class VocabularyOut(BaseModel):
    """What the model's card says it draws: named groups of phrases and its class nouns."""

    pattern: str | None = None
    example: str | None = None
    groups: dict[str, list[str]]
    classes: list[str] = Field(description="class nouns a personal subject can have")

    @classmethod
    def of(cls, vocabulary: Vocabulary | None) -> VocabularyOut | None:
        if vocabulary is None:
            return None
        return cls(pattern=vocabulary.pattern, example=vocabulary.example, groups=vocabulary.groups,
                   classes=vocabulary.classes)


class ModelOut(BaseModel):
    id: str
    name: str
    kind: str  # "base" | "personal"
    token: str | None = None
    class_noun: str | None = None
    base_model_id: str | None = None
    created_at: datetime
    cost_per_picture: ModelPrices | None = None
    vocabulary: VocabularyOut | None = Field(None, description="null: the model lists no vocabulary (no warnings)")


class WarningOut(BaseModel):
    """Words the model will likely ignore; the request is still accepted."""

    code: str = Field(description="unknown_words or unknown_class")
    field: str = Field(description="the request field it is about")
    message: str
    words: list[str]
    index: int | None = Field(None, description="which prompt of a prompt list")

    @classmethod
    def of(cls, hints: list[Hint]) -> list[WarningOut]:
        return [cls(code=hint.code, field=hint.field, message=hint.message, words=hint.words, index=hint.index)
                for hint in hints]


class VocabularyCheck(BaseModel):
    """The words of a prompt (or a prompt list) and a class noun, checked against a model."""

    model_config = ConfigDict(extra="forbid")

    model: Line | None = Field(None, min_length=1, max_length=64)
    prompt: Text | None = Field(None, max_length=MAX_CHECKED_CHARS)
    prompts: list[Annotated[Text, Field(max_length=MAX_CHECKED_CHARS)]] | None = Field(
        None, min_length=1, max_length=MAX_CHECKED_PROMPTS)
    class_noun: Line | None = Field(None, max_length=MAX_CHECKED_CHARS)

    @model_validator(mode="after")
    def _one_kind_of_prompt(self) -> VocabularyCheck:
        if self.prompt is not None and self.prompts is not None:
            raise ValueError("give prompt or prompts, not both")
        return self


class VocabularyChecked(BaseModel):
    warnings: list[WarningOut]
