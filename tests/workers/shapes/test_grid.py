"""The README's picture grid: drawn by the bundled model, laid out as labelled."""
from pathlib import Path

from PIL import Image

from workers.shapes.grid import GAP, LABEL_HEIGHT, SCALE, draw_pictures, grid_cells, make_grid
from workers.shapes.reader import read_picture
from workers.shapes.world import COLORS, SHAPES

MODEL = Path(__file__).resolve().parents[3] / "models" / "shapes-v1"


def test_the_grid_has_a_labelled_cell_per_prompt(tmp_path):
    rows = grid_cells()
    assert [len(row) for row in rows] == [len(COLORS)] * len(SHAPES) + [8, 4]
    assert all(len(row) <= 8 for row in rows)  # one request each: the engine's limit
    with Image.open(make_grid(MODEL, tmp_path / "grid.png")) as sheet:
        side = 64 * SCALE
        assert sheet.size == (8 * (side + GAP) + GAP, len(rows) * (side + LABEL_HEIGHT + GAP) + GAP)


def test_each_picture_of_a_row_follows_its_own_prompt():
    # the circles row is one prompt list: each picture must show its own colour
    readings = [read_picture(image) for image in draw_pictures(MODEL, grid_cells()[0])]
    assert [(reading.shape, reading.color) for reading in readings] == [("circle", color) for color in COLORS]
