"""Training data for the bundled model: drawn pictures, their scenes, and fresh captions.

Pictures are drawn once (seeded) and kept as one uint8 tensor; the UNet trains on their
cached latents. Captions are drawn anew for every batch, so one picture is seen with many
wordings (wrappers, omitted defaults, case, punctuation) and, 10% of the time, with none
(the unconditional branch that classifier-free guidance needs). Each batch also carries the
attributes its captions state, for the caption probe in diffusion_module.py.
"""
from __future__ import annotations

import random
from dataclasses import astuple
from pathlib import Path

import numpy as np
import torch

from workers.shapes.captions import random_caption
from workers.shapes.drawing import draw_scene
from workers.shapes.world import ATTRIBUTE_VOCABULARY, Scene, random_scene

IGNORE = -100  # label for an attribute the caption does not state (cross-entropy skips it)


def draw_dataset(count: int, seed: int, image_size: int) -> tuple[torch.Tensor, list[Scene]]:
    rng = random.Random(seed)
    scenes = [random_scene(rng) for _ in range(count)]
    pixels = np.stack([np.asarray(draw_scene(s, image_size)) for s in scenes])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), scenes


def load_or_draw(path: Path, count: int, seed: int, image_size: int) -> tuple[torch.Tensor, list[Scene]]:
    if path.exists():
        saved = torch.load(path, weights_only=False)
        return saved["pixels"], [Scene(*row) for row in saved["scenes"]]
    pixels, scenes = draw_dataset(count, seed, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"pixels": pixels, "scenes": [astuple(s) for s in scenes]}, path)
    return pixels, scenes


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range diffusers' VAEs work in."""
    return pixels.float().div(127.5).sub(1.0)


class CaptionedLatents(torch.utils.data.Dataset):
    """(latent, scene index) pairs; the collate function writes and tokenizes captions."""

    def __init__(self, latents: torch.Tensor):
        self.latents = latents

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int):
        return self.latents[index], index


def stated_labels(scene: Scene, caption: str) -> list[int]:
    """The attributes a caption fixes, as class indices (see ATTRIBUTE_VOCABULARY).

    Size and position always count: leaving them out means medium and centre. The background
    counts only when the caption names it; an empty caption (dropout) states nothing.
    """
    if not caption:
        return [IGNORE] * len(ATTRIBUTE_VOCABULARY)
    labels = []
    for name, values in ATTRIBUTE_VOCABULARY.items():
        stated = name != "background" or "background" in caption.lower()
        labels.append(values.index(getattr(scene, name)) if stated else IGNORE)
    return labels


class CaptionCollate:
    def __init__(self, scenes: list[Scene], tokenizer, seed: int, dropout: float = 0.1):
        self.scenes = scenes
        self.tokenizer = tokenizer
        self.dropout = dropout
        self.rng = random.Random(seed)

    def __call__(self, batch):
        latents = torch.stack([item[0] for item in batch])
        captions = [
            "" if self.rng.random() < self.dropout else random_caption(self.scenes[i], self.rng)
            for _, i in batch
        ]
        ids = self.tokenizer(
            captions, padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        ).input_ids
        labels = torch.tensor([stated_labels(self.scenes[i], c) for (_, i), c in zip(batch, captions)])
        return latents, ids, labels
