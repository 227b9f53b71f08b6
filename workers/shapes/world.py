"""The shapes world of docs/SHAPES.md as data: palette, shapes, sizes, positions.

Everything that draws, captions, reads or evaluates a picture takes its numbers from here,
so the contract lives in one place.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")

# outer diameter as a share of the picture's width; "medium" has no word in prompts
SIZES: dict[str, float] = {"small": 0.22, "medium": 0.36, "large": 0.48}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)

# centre as (x, y) shares from the top left; "center" is also what an omitted position means
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.50, 0.50),
    "left": (0.25, 0.50),
    "right": (0.75, 0.50),
    "top": (0.50, 0.25),
    "bottom": (0.50, 0.75),
}
POSITION_NAMES: tuple[str, ...] = tuple(POSITIONS)
POSITION_PHRASES: dict[str, str] = {
    "center": "in the center",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}
STAR_INNER_RATIO = 0.4
CENTER_JITTER = 0.03  # share of the width/height, uniform either way
SIZE_JITTER = 0.02  # share of the width, uniform either way

ATTRIBUTES: tuple[str, ...] = ("background", "color", "shape", "size", "position")
# the values each attribute can take, in a fixed order (class indices for training labels)
ATTRIBUTE_VOCABULARY: dict[str, tuple[str, ...]] = {
    "background": COLORS, "color": COLORS, "shape": SHAPES, "size": SIZE_NAMES, "position": POSITION_NAMES,
}


@dataclass(frozen=True)
class Scene:
    """One picture's content: the five attributes plus the small jitter the data draws."""

    background: str
    color: str
    shape: str
    size: str = "medium"
    position: str = "center"
    dx: float = 0.0
    dy: float = 0.0
    dsize: float = 0.0

    def __post_init__(self) -> None:
        if self.background == self.color:
            raise ValueError("the background is never the shape's colour")

    @property
    def diameter(self) -> float:
        return SIZES[self.size] + self.dsize

    @property
    def center(self) -> tuple[float, float]:
        x, y = POSITIONS[self.position]
        return x + self.dx, y + self.dy

    def attributes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def without_jitter(self) -> Scene:
        return replace(self, dx=0.0, dy=0.0, dsize=0.0)


def random_scene(rng: random.Random, jitter: bool = True) -> Scene:
    """Every attribute uniformly at random, the background never the shape's colour."""
    color = rng.choice(COLORS)
    background = rng.choice([c for c in COLORS if c != color])
    scene = Scene(
        background=background,
        color=color,
        shape=rng.choice(SHAPES),
        size=rng.choice(SIZE_NAMES),
        position=rng.choice(POSITION_NAMES),
    )
    if not jitter:
        return scene
    return replace(
        scene,
        dx=rng.uniform(-CENTER_JITTER, CENTER_JITTER),
        dy=rng.uniform(-CENTER_JITTER, CENTER_JITTER),
        dsize=rng.uniform(-SIZE_JITTER, SIZE_JITTER),
    )
