"""A model folder's `imagebooth_model.json`: its name, the sampling defaults that travel
with its weights (a 6M-parameter model trained on flat shapes wants another guidance scale than
Stable Diffusion). Read by the web (what a job will run with, recorded on the job) and by the
engine (what it samples with) from this one reader; the web also reads the words it knows
(its vocabulary). A folder without the file (any stock SD checkpoint), or with a broken one,
gets Stable Diffusion's usual defaults and no vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.catalog.checkpoint import card_path
from app.catalog.vocabulary import Vocabulary, from_card

CARD_NAME = "imagebooth_model.json"
# file names the fine-tune writes into a personal model folder beside its card (the download
# route sends them, the worker loads them; here, where both read without the database code)
LORA_FILE = "pytorch_lora_weights.safetensors"
KOHYA_FILE = "lora_kohya.safetensors"


@dataclass(frozen=True)
class ModelDefaults:
    name: str
    guidance_scale: float = 7.5
    steps: int = 8  # the fast profile's step count; "quality" takes more
    # subfolder of a cheaper decoder distilled from the VAE (AutoencoderTiny), for the fast
    # profile only; the card names it only once it kept prompt fidelity (workers/shapes/distill.py)
    fast_decoder: str | None = None
    # an A1111 sampler name: few-step checkpoints (LCM, Turbo, TCD/Hyper-SD) are sampled as
    # they were distilled, whatever the profile's; None: the profile's
    sampler: str | None = None


# Few-step checkpoints ship the scheduler they were distilled for; where the card says nothing,
# that scheduler names the sampler, steps and guidance (an LCM needs no guidance: 1.0 skips it).
_FEW_STEP_SCHEDULERS = {"LCMScheduler": ("LCM", 4, 1.0)}


def _changed_at(path: Path) -> float:
    card = card_path(path, CARD_NAME)
    return card.stat().st_mtime if card.exists() else 0.0


def model_defaults(folder: Path | str) -> ModelDefaults:
    path = Path(folder).resolve()
    return _read(path, _changed_at(path))


def model_vocabulary(folder: Path | str) -> Vocabulary | None:
    """The words the card lists (app/catalog/vocabulary.py); None when it lists none."""
    path = Path(folder).resolve()
    return _read_vocabulary(path, _changed_at(path))


@lru_cache(maxsize=64)
def _read_vocabulary(path: Path, _mtime: float) -> Vocabulary | None:
    return from_card(_card(card_path(path, CARD_NAME)))


@lru_cache(maxsize=64)
def _read(path: Path, _mtime: float) -> ModelDefaults:
    data = _card(card_path(path, CARD_NAME))
    sampler, steps, guidance = _FEW_STEP_SCHEDULERS.get(
        _card(path / "scheduler" / "scheduler_config.json").get("_class_name", ""),
        (None, ModelDefaults.steps, ModelDefaults.guidance_scale))
    return ModelDefaults(
        name=str(data.get("name") or (path.stem if path.suffix == ".safetensors" else path.name)),
        guidance_scale=float(data.get("guidance_scale", guidance)),
        steps=int(data.get("steps", steps)),
        fast_decoder=data.get("fast_decoder") or None,
        sampler=data.get("sampler") or sampler,
    )


def _card(file: Path) -> dict[str, Any]:
    try:
        card = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}
