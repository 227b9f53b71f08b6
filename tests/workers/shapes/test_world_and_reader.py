import random

import numpy as np
import pytest

from workers.shapes.captions import canonical_caption, random_caption
from workers.shapes.drawing import draw_scene
from workers.shapes.evaluate import score
from workers.shapes.reader import read_picture
from workers.shapes.world import PALETTE, Scene, random_scene


def test_reader_reads_drawn_pictures_at_99_percent():
    rng = random.Random(7)
    scenes = [random_scene(rng) for _ in range(600)]
    readings = [read_picture(draw_scene(s)).attributes() for s in scenes]
    scores = score(readings, [s.attributes() for s in scenes])
    assert scores["all_five"] >= 0.99, scores


def test_picture_is_flat_background_and_one_shape():
    image = np.asarray(draw_scene(Scene("blue", "red", "square", "large", "left")))
    assert tuple(image[0, -1]) == PALETTE["blue"]
    assert tuple(image[32, 16]) == PALETTE["red"]  # the square's centre on the left
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    # anti-aliasing adds only blends along the edge, no texture
    assert len(colours) < 40


def test_background_is_never_the_shape_colour():
    with pytest.raises(ValueError):
        Scene("red", "red", "circle")
    rng = random.Random(0)
    assert all(s.background != s.color for s in (random_scene(rng) for _ in range(500)))


@pytest.mark.parametrize(
    "scene, expected",
    [
        (Scene("orange", "red", "circle"), "a red circle in the center on an orange background"),
        (Scene("white", "orange", "star", "small", "left"), "an orange small star on the left on a white background".replace("an orange small", "a small orange")),
        (Scene("white", "purple", "triangle", "large", "bottom"), "a large purple triangle at the bottom on a white background"),
    ],
)
def test_canonical_caption_follows_the_grammar(scene, expected):
    assert canonical_caption(scene) == expected


def test_random_captions_use_an_where_english_does_and_keep_non_default_attributes():
    rng = random.Random(3)
    for _ in range(300):
        scene = random_scene(rng)
        caption = random_caption(scene, rng).lower()
        assert " a orange" not in f" {caption}" and " a image" not in f" {caption}"
        assert scene.color in caption and scene.shape in caption
        if scene.size != "medium":
            assert scene.size in caption
        if scene.position != "center":
            assert scene.position in caption


def test_caption_probe_labels_name_what_each_caption_states():
    from workers.shapes.dataset import IGNORE, stated_labels
    from workers.shapes.world import ATTRIBUTE_VOCABULARY

    scene = Scene(background="blue", color="red", shape="star", size="small", position="left")
    names = list(ATTRIBUTE_VOCABULARY)
    labels = dict(zip(names, stated_labels(scene, "A photo of a small red star on the left on a blue background.")))
    assert {k: ATTRIBUTE_VOCABULARY[k][v] for k, v in labels.items()} == scene.attributes()
    # no background words: the background is free, so the probe must not be told one
    unstated = dict(zip(names, stated_labels(scene, "a small red star on the left")))
    assert unstated["background"] == IGNORE and unstated["position"] != IGNORE
    # the unconditional (dropped) caption states nothing
    assert stated_labels(scene, "") == [IGNORE] * len(names)
