"""The generation request's limits, for the web's checks (422 at the edge, before a job or a
charge exists) and the engine's alike: workers import this module, the web never imports the
engine (ARCHITECTURE.md rule 1), so this is the one copy."""

from __future__ import annotations

from typing import Literal, get_args

MAX_PROMPT_CHARS = 1000
MAX_IMAGES = 8
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
# Seeds are stored and shown as plain integers; 2**32 keeps them A1111-compatible (its UI and
# most tools treat seeds as unsigned 32-bit) while torch.Generator would accept more.
MAX_SEED = 2**32 - 1
Profile = Literal["fast", "quality"]
PROFILE_NAMES: tuple[str, ...] = get_args(Profile)
# The "quality" profile's step count when a request names none ("fast" takes the model card's).
QUALITY_DEFAULT_STEPS = 25
