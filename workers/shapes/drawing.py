"""Draws a Scene as an RGB picture: flat background, one flat shape, light anti-aliasing.

Shapes are drawn at 4x and box-downsampled, which gives the light anti-aliasing SHAPES.md
allows without textures or gradients elsewhere.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from workers.shapes.world import PALETTE, STAR_INNER_RATIO, Scene

SUPERSAMPLE = 4


def shape_polygon(shape: str, cx: float, cy: float, diameter: float) -> list[tuple[float, float]] | None:
    """The outline in pixels for polygon shapes; None for the circle (drawn as an ellipse).

    Square and triangle span `diameter` in width; the star's outer points lie on a circle of
    that diameter (its "outer diameter").
    """
    r = diameter / 2
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        h = diameter * math.sqrt(3) / 2
        return [(cx, cy - h / 2), (cx + r, cy + h / 2), (cx - r, cy + h / 2)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * STAR_INNER_RATIO
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, diameter: float, fill) -> None:
    polygon = shape_polygon(shape, cx, cy, diameter)
    if polygon is None:
        r = diameter / 2
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(polygon, fill=fill)


def draw_scene(scene: Scene, size: int = 64) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), PALETTE[scene.background])
    cx, cy = scene.center
    draw_shape(ImageDraw.Draw(image), scene.shape, cx * big, cy * big, scene.diameter * big, PALETTE[scene.color])
    return image.resize((size, size), Image.Resampling.BOX)


def shape_coverage(shape: str, cx: float, cy: float, diameter: float, size: int) -> np.ndarray:
    """How much of each pixel one shape covers (0..1), in pixel units, drawn as draw_scene
    draws, so the reader's templates match real pictures."""
    big = size * SUPERSAMPLE
    image = Image.new("L", (big, big), 0)
    s = SUPERSAMPLE
    draw_shape(ImageDraw.Draw(image), shape, cx * s, cy * s, diameter * s, 255)
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
