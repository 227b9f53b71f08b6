"""What a caller asks the engine for, what it gets back, and the input checks.

Kept apart from the sampling loop so the worker task (and its tests) can build and validate
requests without touching torch. The limits are the web's (app/generation/limits.py, one copy for both). Every bad input raises `RequestError`, a ValueError whose
`field` names the offending field, so the API layer can answer 422 with that name.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from app.generation.limits import MAX_GUIDANCE, MAX_IMAGES, MAX_PROMPT_CHARS, MAX_SEED, MAX_STEPS, PROFILE_NAMES
from workers.engine.schedulers import SAMPLERS

MAX_SIDE = 2048


class RequestError(ValueError):
    """A generation request field is invalid; `field` is its name."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class GenerationRequest:
    """One request: `n` images of one prompt (or `prompts`, one per image), each with its own seed.

    None means "the default": steps and guidance come from the profile, width and height from
    the model (UNet sample size x VAE scale factor), seeds are drawn at random (and returned,
    so any image can be reproduced). The negative prompt is the request's, for every image.
    """

    prompt: str = ""
    negative_prompt: str = ""
    n: int = 1
    steps: int | None = None
    guidance_scale: float | None = None
    seeds: list[int] | None = None
    profile: str = "fast"
    width: int | None = None
    height: int | None = None
    sampler: str | None = None  # override the profile's sampler (benchmarks, comparisons)
    # Image k's prompt, instead of `prompt` for all: a prompt list, or one batch serving jobs
    # with different prompts.
    prompts: list[str] | None = None

    def image_prompts(self) -> list[str]:
        """The prompt of each image, in seed order."""
        return list(self.prompts) if self.prompts is not None else [self.prompt] * self.n


@dataclass(frozen=True)
class Timing:
    """Seconds spent in each stage, for the job record and the benchmark."""

    load_s: float = 0.0
    encode_s: float = 0.0
    denoise_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0


@dataclass
class GenerationResult:
    """The images in seed order plus every parameter needed to reproduce each of them."""

    images: list  # PIL.Image.Image, one per seed
    seeds: list[int]
    prompts: list[str]  # one per image
    negative_prompt: str
    steps: int
    guidance_scale: float
    sampler: str
    width: int
    height: int
    model_name: str
    profile: str
    timing: Timing = field(default_factory=Timing)
    backend: str = ""  # what ran the networks, e.g. "openvino-bf16" (backends.py)
    batch_images: int = 0  # pictures in the UNet batch that made these (other requests' too)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_request(request: GenerationRequest) -> None:
    """Raise RequestError for the first invalid field; ranges match the public API's."""
    if not _is_int(request.n) or not 1 <= request.n <= MAX_IMAGES:
        raise RequestError("n", f"must be an integer from 1 to {MAX_IMAGES}")
    _check_prompts(request)
    if not isinstance(request.negative_prompt, str):
        raise RequestError("negative_prompt", "must be a string")
    if len(request.negative_prompt) > MAX_PROMPT_CHARS:
        raise RequestError("negative_prompt", f"must be at most {MAX_PROMPT_CHARS} characters")
    if request.steps is not None and (not _is_int(request.steps) or not 1 <= request.steps <= MAX_STEPS):
        raise RequestError("steps", f"must be an integer from 1 to {MAX_STEPS}")
    guidance = request.guidance_scale
    if guidance is not None and (not _is_number(guidance) or not 0 <= guidance <= MAX_GUIDANCE):
        raise RequestError("guidance_scale", f"must be a number from 0 to {MAX_GUIDANCE:g}")
    _check_seeds(request)
    if request.profile not in PROFILE_NAMES:
        raise RequestError("profile", f"must be one of {', '.join(PROFILE_NAMES)}")
    if request.sampler is not None and request.sampler not in SAMPLERS:
        raise RequestError("sampler", f"must be one of {', '.join(sorted(SAMPLERS))}")
    for name in ("width", "height"):
        _check_side(name, getattr(request, name))


def _check_prompts(request: GenerationRequest) -> None:
    """`prompt` for every image, or `prompts` with one per image; never both."""
    if request.prompts is None:
        _check_prompt_text("prompt", request.prompt)
        return
    if request.prompt:
        raise RequestError("prompt", "give prompt or prompts, not both")
    if not isinstance(request.prompts, (list, tuple)) or len(request.prompts) != request.n:
        raise RequestError("prompts", f"must be a list of exactly n={request.n} prompts")
    for text in request.prompts:
        _check_prompt_text("prompts", text)


def _check_prompt_text(name: str, text) -> None:
    if not isinstance(text, str) or not text.strip():
        raise RequestError(name, "must not be empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise RequestError(name, f"must be at most {MAX_PROMPT_CHARS} characters")


def _check_seeds(request: GenerationRequest) -> None:
    if request.seeds is None:
        return
    if not isinstance(request.seeds, (list, tuple)) or len(request.seeds) != request.n:
        raise RequestError("seeds", f"must be a list of exactly n={request.n} seeds")
    for seed in request.seeds:
        if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
            raise RequestError("seeds", f"each seed must be an integer from 0 to {MAX_SEED}")


def _check_side(name: str, value) -> None:
    # Multiples of 8 work for every SD VAE (scale factor 8 or less) and UNet depth in use.
    if value is None:
        return
    if not _is_int(value) or not 8 <= value <= MAX_SIDE or value % 8:
        raise RequestError(name, f"must be a multiple of 8 from 8 to {MAX_SIDE}")


def resolve_seeds(request: GenerationRequest) -> list[int]:
    """The request's seeds, or fresh random ones (returned to the caller for reproduction)."""
    if request.seeds is not None:
        return list(request.seeds)
    return [secrets.randbelow(MAX_SEED + 1) for _ in range(request.n)]
