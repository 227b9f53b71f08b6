"""What a job costs: the one rule behind the charge, the 202, the Create page and settlement.

A generation costs, per picture,

    ceil(image_credit_cost x steps / default_steps x max(1, pixels / 512²))

- `steps / default_steps`: sampling makes one UNet call per step, so the work grows with the
  steps; a picture at the model's fast default (its card's step count) costs
  `image_credit_cost` (1 credit unless configured).
- `pixels`: the model's native size. Up to 512x512 it adds nothing; larger models pay in
  proportion (SDXL's 1024x1024 has 4x the latents, so 4x the credits).
The job costs `n x per_picture`, so settlement can charge exactly the pictures made.

A fine-tune costs `finetune_credit_cost` for up to `finetune_credit_steps` training steps
and, above that, in proportion to the steps asked for.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from app.catalog.checkpoint import NATIVE_SIDE, ModelPathError, model_kind
from app.config import get_settings
from app.generation.limits import QUALITY_DEFAULT_STEPS

REFERENCE_PIXELS = 512 * 512


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def picture_cost(steps: int, default_steps: int, pixels: int) -> int:
    """Credits for one picture of `pixels` pixels at `steps` steps (integer arithmetic: no
    float rounding can push an exact price up a credit)."""
    credit = get_settings().image_credit_cost
    return _ceil_div(credit * steps * max(pixels, REFERENCE_PIXELS), max(default_steps, 1) * REFERENCE_PIXELS)


def generation_cost(model_folder: Path, default_steps: int, n: int, steps: int) -> int:
    return n * picture_cost(steps, default_steps, native_pixels(model_folder))


def profile_prices(model_folder: Path, default_steps: int) -> dict[str, int]:
    """Credits per picture for each speed profile when steps are left to it (the Create page's
    choices): fast runs the model's default steps, quality the engine's quality steps."""
    pixels = native_pixels(model_folder)
    return {
        "fast": picture_cost(default_steps, default_steps, pixels),
        "quality": picture_cost(QUALITY_DEFAULT_STEPS, default_steps, pixels),
    }


def charge_for_pictures(cost: int, n: int, made: int) -> int:
    """What a generation priced `cost` for `n` pictures charges once `made` of them exist."""
    if n <= 0:
        return 0
    return (cost // n) * max(0, min(made, n))


def finetune_cost(steps: int | None) -> int:
    """`steps`: the job's own step count, None for the preset's."""
    settings = get_settings()
    if steps is None or steps <= settings.finetune_credit_steps:
        return settings.finetune_credit_cost
    return _ceil_div(settings.finetune_credit_cost * steps, settings.finetune_credit_steps)


@functools.lru_cache(maxsize=64)
def native_pixels(model_folder: Path) -> int:
    """Width x height a diffusers folder draws at: the UNet's sample size times the VAE's
    downscale (2 per block after the first), read from their config files as the engine
    does. A single-file checkpoint is priced at its family's native size (SDXL 1024x1024)."""
    if model_folder.suffix == ".safetensors":
        try:
            variant = model_kind(model_folder).variant
        except ModelPathError:
            return REFERENCE_PIXELS
        side = NATIVE_SIDE.get(variant or "", 512)
        return side * side
    try:
        unet = json.loads((model_folder / "unet" / "config.json").read_text())
        vae = json.loads((model_folder / "vae" / "config.json").read_text())
        sample = unet["sample_size"]
        height, width = (int(sample[0]), int(sample[-1])) if isinstance(sample, list) else (int(sample), int(sample))
        scale = 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return REFERENCE_PIXELS
    return height * width * scale * scale
