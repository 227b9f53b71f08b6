"""The class-image bank: prior-preservation pictures made once per (base model, class prompt).

Every job on the same base model and class reuses them (the reference scripts generate
them again per run, at 50 sampler steps each). Image i always has seed i, so the bank's
content does not depend on which job made it, and a second job only adds what is missing.
Files are written under a temporary name and renamed, so two jobs filling the same bank at
once never see half-written pictures.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image

BATCH = 8


def model_key(base_model: Path) -> str:
    """Identifies a base model's weights: its folder plus the UNet file's size and time (a
    single-file checkpoint: that file's)."""
    base = Path(base_model).resolve()
    weights = [base] if base.is_file() else (sorted((base / "unet").glob("*.safetensors"))
                                             or sorted((base / "unet").glob("*")))
    stamp = "|".join(f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)
    return hashlib.sha1(f"{base}|{stamp}".encode()).hexdigest()[:16]


def bank_dir(bank_root: Path, base_model: Path, prompt: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "empty"
    return Path(bank_root) / model_key(base_model) / slug


def ensure_class_images(bank_root: Path, base_model: Path, prompt: str, count: int, steps: int,
                        on_progress: Callable[[int, int], None] | None = None, size: int | None = None) -> list[Path]:
    """The first `count` pictures of the bank for (base_model, prompt), making what is missing,
    at `size` px (None: the model's own; training resizes them to its resolution anyway)."""
    from workers.engine.inputs import GenerationRequest
    from workers.engine.loading import ModelRef
    from workers.engine.sampling import generate_images

    folder = bank_dir(bank_root, base_model, prompt)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.png" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    for start in range(0, len(missing), BATCH):
        seeds = missing[start : start + BATCH]
        result = generate_images(ModelRef(Path(base_model)),
                                 GenerationRequest(prompt=prompt, n=len(seeds), steps=steps, seeds=seeds,
                                                   width=size, height=size))
        for seed, image in zip(seeds, result.images):
            _write_atomically(image, paths[seed])
        if on_progress:
            on_progress(min(start + BATCH, len(missing)), len(missing))
    return paths


def _write_atomically(image: Image.Image, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(temporary, format="PNG")
    os.replace(temporary, path)
