"""Reads a picture back into the five attributes, from pixels alone.

The prompt-fidelity eval trusts this reader, so it is checked on drawn pictures
(tests/workers/shapes). Stages: snap pixels to the palette, background from the border,
shape colour from the rest, then size, position and shape from the shape's mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from workers.shapes.drawing import shape_coverage
from workers.shapes.world import COLORS, PALETTE, POSITIONS, SHAPES, SIZES

_PALETTE_ARRAY = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)
# a shape smaller than this share of the picture is taken as "nothing drawn"
MIN_SHAPE_SHARE = 0.004


@dataclass(frozen=True)
class Reading:
    background: str | None
    color: str | None
    shape: str | None
    size: str | None
    position: str | None

    def attributes(self) -> dict[str, str | None]:
        return dict(self.__dict__)


def palette_labels(pixels: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour for each pixel (H, W)."""
    flat = pixels.reshape(-1, 3).astype(np.float32)
    distances = ((flat[:, None, :] - _PALETTE_ARRAY[None, :, :]) ** 2).sum(-1)
    return distances.argmin(1).reshape(pixels.shape[:2])


def _coverage(pixels: np.ndarray, background: int, color: int) -> np.ndarray:
    """Share of the shape's colour in each pixel, as a blend between the two colours:
    anti-aliased edges count partly, which keeps thin star points visible."""
    bg, fg = _PALETTE_ARRAY[background], _PALETTE_ARRAY[color]
    direction = fg - bg
    alpha = ((pixels.astype(np.float32) - bg) @ direction) / float(direction @ direction)
    return np.clip(alpha, 0.0, 1.0)


def _border(labels: np.ndarray) -> np.ndarray:
    return np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])


def _nearest(value: float, table: dict[str, float]) -> str:
    return min(table, key=lambda name: abs(table[name] - value))


def _best_shape(coverage: np.ndarray, width: int) -> tuple[str, float, float, float]:
    """Template matching: each shape, at a few diameters around what the mask's width
    suggests, centred on the coverage's centroid; the best soft overlap gives the shape,
    its diameter and its centre (x, y) in pixels."""
    ys, xs = np.indices(coverage.shape, dtype=np.float32) + 0.5
    total = coverage.sum()
    mx, my = float((xs * coverage).sum() / total), float((ys * coverage).sum() / total)
    best = (SHAPES[0], -1.0, float(width), mx, my)
    for shape in SHAPES:
        guess = width / 0.951 if shape == "star" else float(width)
        for scale in _SCALES[shape]:
            d = guess * scale
            # drawing centres a triangle on its box; its centroid lies h/6 below that
            cy = my - d * math.sqrt(3) / 12 if shape == "triangle" else my
            template = shape_coverage(shape, mx, cy, d, coverage.shape[0])
            iou = np.minimum(template, coverage).sum() / max(np.maximum(template, coverage).sum(), 1e-6)
            if iou > best[1]:
                best = (shape, iou, d, mx, cy)
    shape, _, diameter, cx, cy = best
    return shape, diameter, cx, cy


# a box fits circles, squares and triangles closely; a star's thin points are eroded by the
# anti-aliasing, so its box understates its diameter more and is searched more widely
_SCALES: dict[str, tuple[float, ...]] = {
    "circle": (0.95, 1.0, 1.05, 1.1),
    "square": (0.95, 1.0, 1.05, 1.1),
    "triangle": (0.95, 1.0, 1.05, 1.1),
    "star": (0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25),
}


def read_picture(image: Image.Image | np.ndarray) -> Reading:
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    labels = palette_labels(pixels)
    side = labels.shape[1]
    background = int(np.bincount(_border(labels), minlength=len(COLORS)).argmax())
    counts = np.bincount(labels.ravel(), minlength=len(COLORS))
    counts[background] = 0
    if counts.max() < MIN_SHAPE_SHARE * labels.size:
        return Reading(COLORS[background], None, None, None, None)
    color = int(counts.argmax())
    coverage = _coverage(pixels, background, color)
    mask = coverage > 0.5
    # rows/columns with at least two shape pixels: stray pixels of noise do not stretch the box
    rows = np.flatnonzero(mask.sum(1) >= 2)
    cols = np.flatnonzero(mask.sum(0) >= 2)
    if len(rows) == 0 or len(cols) == 0:
        return Reading(COLORS[background], COLORS[color], None, None, None)
    shape, diameter, cx, cy = _best_shape(coverage * mask, cols[-1] - cols[0] + 1)
    cx, cy = cx / side, cy / labels.shape[0]
    position = min(POSITIONS, key=lambda p: (POSITIONS[p][0] - cx) ** 2 + (POSITIONS[p][1] - cy) ** 2)
    return Reading(
        background=COLORS[background],
        color=COLORS[color],
        shape=shape,
        size=_nearest(diameter / side, SIZES),
        position=position,
    )
