"""Background variants of flat-background photos (the bundled model's preset)."""
import numpy as np
from PIL import Image

from workers.dreambooth.backgrounds import background_variants
from workers.dreambooth.subjects import TUNING_SUBJECTS, draw_subject
from workers.shapes.reader import palette_labels
from workers.shapes.world import COLORS, PALETTE


def test_a_flat_background_photo_gets_every_other_palette_background():
    subject = TUNING_SUBJECTS[0]  # blue square with yellow stripes
    photo = draw_subject(subject, "red")
    variants = background_variants(photo, PALETTE)
    backgrounds = {COLORS[np.bincount(palette_labels(np.asarray(v))[0]).argmax()] for v in variants}
    assert backgrounds == set(COLORS) - {"red", subject.color, subject.pattern_color}
    original = np.asarray(photo)
    for variant in variants:
        pixels = np.asarray(variant)
        inside = np.abs(original.astype(int) - np.array(PALETTE["red"])).max(-1) > 10
        assert np.array_equal(pixels[inside], original[inside])  # the subject itself is untouched


def test_a_photo_without_a_flat_background_is_left_alone():
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert background_variants(Image.fromarray(noisy), PALETTE) == []


def test_an_empty_picture_has_no_subject_to_move():
    assert background_variants(Image.new("RGB", (64, 64), PALETTE["green"]), PALETTE) == []
