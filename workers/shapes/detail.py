"""Shapes carrying flat marks inside them: what the autoencoder must also represent.

SHAPES.md's training pictures are flat, but a personal subject is "a circle with a face
drawn on it, a square with stripes": detail inside a shape. An autoencoder trained on flat
pictures alone drops it (measured on the first bundled VAE: after its own round trip a face
or stripes were gone in every picture), and no fine-tune can draw what the VAE cannot
represent. These pictures are only ever shown to the autoencoder, never captioned and never
seen by the UNet, so the text-to-image world stays the flat one of SHAPES.md.

A mark is an ellipse, a rectangle, parallel bars, a row of dots, a smaller copy of the shape
or a ring, in a palette colour other than the shape's, clipped to the shape.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image, ImageDraw

from workers.shapes.drawing import SUPERSAMPLE, draw_shape
from workers.shapes.world import COLORS, PALETTE, random_scene

MARKS = ("ellipse", "rectangle", "bars", "dots", "inner", "ring")


def _mark(draw: ImageDraw.ImageDraw, rng: random.Random, kind: str, shape: str, cx: float, cy: float, r: float,
          fill) -> None:
    # a centre within the inner part of the shape, sizes relative to its radius
    x, y = cx + rng.uniform(-0.45, 0.45) * r, cy + rng.uniform(-0.45, 0.45) * r
    if kind == "ellipse":
        w, h = rng.uniform(0.1, 0.45) * r, rng.uniform(0.1, 0.45) * r
        draw.ellipse([x - w, y - h, x + w, y + h], fill=fill)
    elif kind == "rectangle":
        w, h = rng.uniform(0.1, 0.6) * r, rng.uniform(0.06, 0.4) * r
        draw.rectangle([x - w, y - h, x + w, y + h], fill=fill)
    elif kind == "bars":
        count, half = rng.randint(2, 4), rng.uniform(0.06, 0.15) * r
        gap = rng.uniform(0.3, 0.55) * r
        vertical = rng.random() < 0.5
        for k in range(count):
            offset = (k - (count - 1) / 2) * gap
            if vertical:
                draw.rectangle([cx + offset - half, cy - r, cx + offset + half, cy + r], fill=fill)
            else:
                draw.rectangle([cx - r, cy + offset - half, cx + r, cy + offset + half], fill=fill)
    elif kind == "dots":
        radius = rng.uniform(0.08, 0.16) * r
        for _ in range(rng.randint(2, 5)):
            dx, dy = cx + rng.uniform(-0.55, 0.55) * r, cy + rng.uniform(-0.55, 0.55) * r
            draw.ellipse([dx - radius, dy - radius, dx + radius, dy + radius], fill=fill)
    elif kind == "inner":
        draw_shape(draw, shape, cx, cy, rng.uniform(0.3, 0.8) * 2 * r, fill)
    elif kind == "ring":
        outer = rng.uniform(0.45, 0.8) * r
        inner = outer * rng.uniform(0.4, 0.7)
        draw.ellipse([cx - outer, cy - outer, cx + outer, cy + outer], outline=fill, width=max(1, round(outer - inner)))
    else:
        raise ValueError(f"unknown mark {kind!r}")


def _marked_shape(rng: random.Random, size: int):
    """A random scene's shape carrying 1-3 marks, at SUPERSAMPLE x size: the scene, the
    painted shape layer and its mask. Bigger shapes are likelier, since a subject photo
    shows its subject large."""
    scene = random_scene(rng)
    big = size * SUPERSAMPLE
    cx, cy = scene.center[0] * big, scene.center[1] * big
    r = scene.diameter * big / 2
    if rng.random() < 0.6:
        r *= rng.uniform(1.0, 1.35)
    mask = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(mask), scene.shape, cx, cy, 2 * r, 255)
    layer = Image.new("RGB", (big, big), PALETTE[scene.color])
    marks = ImageDraw.Draw(layer)
    others = [c for c in COLORS if c != scene.color]
    for _ in range(rng.randint(1, 3)):
        _mark(marks, rng, rng.choice(MARKS), scene.shape, cx, cy, r, PALETTE[rng.choice(others)])
    return scene, layer, mask


def _on(background: str, layer: Image.Image, mask: Image.Image, size: int) -> Image.Image:
    image = Image.new("RGB", layer.size, PALETTE[background])
    image.paste(layer, (0, 0), mask)
    return image.resize((size, size), Image.Resampling.BOX)


def draw_detailed(rng: random.Random, size: int = 64) -> Image.Image:
    scene, layer, mask = _marked_shape(rng, size)
    return _on(scene.background, layer, mask, size)


def detailed_pair(rng: random.Random, size: int = 64, cell: int = 4):
    """The same marked shape on two backgrounds, and which latent cells (cell x cell pixels)
    lie mostly inside the shape: a subject learned from photos on one background is drawn on
    another, so its latents must decode in either context (vae_module.DetailTraining)."""
    scene, layer, mask = _marked_shape(rng, size)
    other = rng.choice([c for c in COLORS if c not in (scene.color, scene.background)])
    inside = np.asarray(mask.resize((size // cell, size // cell), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return _on(scene.background, layer, mask, size), _on(other, layer, mask, size), inside >= 0.5


def draw_detailed_batch(count: int, seed: int, size: int = 64) -> torch.Tensor:
    """uint8 (count, 3, size, size), like draw_dataset's pixels."""
    rng = random.Random(seed)
    pixels = np.stack([np.asarray(draw_detailed(rng, size)) for _ in range(count)])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
