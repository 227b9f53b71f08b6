"""A labelled picture grid of what a shapes-world model draws (the README's picture).

    python -m workers.shapes.grid --out docs/bundled-model-grid.png

Rows: each shape in every colour (one background each), the sizes and positions of one shape,
and prompts with words the model never saw (what a vocabulary warning is about). Every picture comes from the model itself through the engine (fixed seeds, the model's
fast defaults), drawn at 2x with nearest-neighbour scaling so the 64 px pictures stay sharp.
"""
from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from pathlib import Path

from workers.shapes.captions import with_article
from workers.shapes.world import COLORS, POSITION_PHRASES, SHAPES

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "shapes-v1"
SCALE = 2
LABEL_HEIGHT = 36  # two lines of 12 px text
GAP = 6
SEED = 7
# prompts a newcomer types; the model knows none of their nouns and draws some shape anyway
UNKNOWN_WORDS = ("a cat", "a red dog", "a cat astronaut on the moon", "a green house")


@dataclass(frozen=True)
class Cell:
    prompt: str
    label: str  # the words that change along the row


def _background(color: str) -> str:
    return "black" if color in ("white", "yellow") else "white"


def grid_cells() -> list[list[Cell]]:
    """The rows of the grid: shapes x colours, sizes and positions of a blue star, unknown words."""
    rows = [[Cell(f"{with_article(color + ' ' + shape)} on {with_article(_background(color) + ' background')}",
                  f"{color} {shape}") for color in COLORS] for shape in SHAPES]
    sizes = [Cell(f"{with_article(' '.join(filter(None, [size, 'blue star'])))} on a yellow background",
                  size or "no size word") for size in ("small", "", "large")]
    positions = [Cell(f"a blue star {phrase} on a yellow background", phrase) for phrase in POSITION_PHRASES.values()]
    unknown = [Cell(prompt, f'"{prompt}"') for prompt in UNKNOWN_WORDS]
    return [*rows, sizes + positions, unknown]


def draw_pictures(model: Path, cells: list[Cell]) -> list:
    from workers.engine import GenerationRequest, ModelRef, generate_images

    prompts = [cell.prompt for cell in cells]
    request = GenerationRequest(prompts=prompts, n=len(prompts), seeds=[SEED] * len(prompts))
    return generate_images(ModelRef(base=model), request).images


def compose(rows: list[list[Cell]], pictures: list[list]):
    """One image: the pictures in rows, each labelled underneath."""
    from PIL import Image, ImageDraw, ImageFont

    side = pictures[0][0].width * SCALE
    columns = max(len(row) for row in rows)
    width = columns * (side + GAP) + GAP
    height = len(rows) * (side + LABEL_HEIGHT + GAP) + GAP
    sheet = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for r, (row, images) in enumerate(zip(rows, pictures, strict=True)):
        top = GAP + r * (side + LABEL_HEIGHT + GAP)
        for c, (cell, image) in enumerate(zip(row, images, strict=True)):
            left = GAP + c * (side + GAP)
            sheet.paste(image.resize((side, side), Image.Resampling.NEAREST), (left, top))
            label = "\n".join(textwrap.wrap(cell.label, 20))
            draw.multiline_text((left + side / 2, top + side + 4), label, fill=(40, 40, 40), font=font, anchor="ma",
                                align="center", spacing=2)
    return sheet


def make_grid(model: Path, out: Path) -> Path:
    rows = grid_cells()
    # one batch of at most 8 pictures per row: the engine's per-request limit
    pictures = [draw_pictures(model, row) for row in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours hold flat shapes and their anti-aliasing; a third of the RGB file's size
    compose(rows, pictures).quantize(colors=256).save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.shapes.grid", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="diffusers folder (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=Path("docs/bundled-model-grid.png"))
    args = parser.parse_args(argv)
    print(make_grid(args.model, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
