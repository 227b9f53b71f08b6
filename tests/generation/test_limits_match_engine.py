"""The web repeats the engine's request limits (it never imports the engine, see
app/generation/schemas.py); this keeps the two copies one rule."""

from __future__ import annotations

import typing

import pytest

from app.generation import schemas

pytestmark = pytest.mark.backend_independent


def test_web_limits_are_the_engines() -> None:
    from workers.engine import inputs
    from workers.engine.profiles import _QUALITY

    for name in ("MAX_PROMPT_CHARS", "MAX_IMAGES", "MAX_STEPS", "MAX_GUIDANCE", "MAX_SEED"):
        assert getattr(schemas, name) == getattr(inputs, name), name
    profile_field = schemas.GenerationCreate.model_fields["profile"].annotation
    assert typing.get_args(profile_field) == inputs.PROFILE_NAMES
    assert _QUALITY.steps == schemas.QUALITY_DEFAULT_STEPS
