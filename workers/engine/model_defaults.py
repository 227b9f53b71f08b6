"""Per-model sampling defaults, read from the model folder's `imagebooth_model.json`.

A 6M-parameter model trained on flat shapes wants a different guidance scale than Stable
Diffusion, so the best settings travel with the weights. A folder without the file (any
stock SD checkpoint) gets Stable Diffusion's usual defaults.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CARD_NAME = "imagebooth_model.json"


@dataclass(frozen=True)
class ModelDefaults:
    name: str
    guidance_scale: float = 7.5
    steps: int = 8  # the fast profile's step count; "quality" takes more


def model_defaults(folder: Path | str) -> ModelDefaults:
    path = Path(folder).resolve()
    return _read(path, (path / CARD_NAME).stat().st_mtime if (path / CARD_NAME).exists() else 0.0)


@lru_cache(maxsize=64)
def _read(path: Path, _mtime: float) -> ModelDefaults:
    card = path / CARD_NAME
    data = json.loads(card.read_text()) if card.exists() else {}
    return ModelDefaults(
        name=str(data.get("name") or path.name),
        guidance_scale=float(data.get("guidance_scale", ModelDefaults.guidance_scale)),
        steps=int(data.get("steps", ModelDefaults.steps)),
    )
