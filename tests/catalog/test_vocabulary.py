"""The model card's vocabulary and the words of a prompt the model does not know."""

from __future__ import annotations

import json
import random

import pytest

from app.catalog import vocabulary
from app.config import REPO_ROOT
from workers.shapes.captions import card_vocabulary, random_caption
from workers.shapes.world import random_scene

pytestmark = pytest.mark.backend_independent
BUNDLED_CARD = REPO_ROOT / "models" / "shapes-v1" / "imagebooth_model.json"


@pytest.fixture(scope="module")
def bundled() -> vocabulary.Vocabulary:
    found = vocabulary.from_card(json.loads(BUNDLED_CARD.read_text()))
    assert found is not None
    return found


def test_the_bundled_card_lists_what_the_training_captions_say() -> None:
    assert json.loads(BUNDLED_CARD.read_text())["vocabulary"] == card_vocabulary()


def test_every_word_of_a_training_caption_is_known(bundled) -> None:
    rng = random.Random(3)
    captions = [random_caption(random_scene(rng), rng) for _ in range(2000)]
    assert [caption for caption in captions if bundled.unknown_words(caption)] == []


def test_words_outside_the_card_are_named_once_each_in_order(bundled) -> None:
    assert bundled.unknown_words("A cat astronaut on the moon. The CAT!") == ["cat", "astronaut", "moon"]
    assert bundled.unknown_words("a medium red circle and a blue square") == ["medium", "and"]
    assert bundled.unknown_words("un cercle rouge, 赤い円") == ["un", "cercle", "rouge", "赤い円"]
    assert bundled.unknown_words("A photo of a large purple triangle at the bottom on a white background.") == []


def test_prompt_hints_name_the_model_and_the_prompt_of_a_list(bundled) -> None:
    single = vocabulary.prompt_hints(bundled, "shapes-v1", ["a cat astronaut on the moon"], as_list=False)
    assert [(hint.code, hint.field, hint.words, hint.index) for hint in single] == [
        ("unknown_words", "prompt", ["cat", "astronaut", "moon"], None)]
    assert '"cat", "astronaut", "moon"' in single[0].message and "shapes-v1" in single[0].message
    listed = vocabulary.prompt_hints(bundled, "shapes-v1", ["a red circle", "a green dog"], as_list=True)
    assert [(hint.field, hint.words, hint.index) for hint in listed] == [("prompts", ["dog"], 1)]
    assert listed[0].message.startswith("Prompt 2:")


def test_a_card_without_a_vocabulary_knows_everything() -> None:
    for card in ({}, {"name": "sd15", "steps": 20}, {"vocabulary": "shapes"}, {"vocabulary": {"groups": {}}}):
        found = vocabulary.from_card(card)
        assert found is None
        assert vocabulary.prompt_hints(found, "sd15", ["a cat astronaut on the moon"], as_list=False) == []
        assert vocabulary.class_hints(found, "sd15", "dog") == []


def test_a_personal_model_also_knows_its_token_and_class_noun(bundled) -> None:
    personal = bundled.with_words(["sks", "teddy bear"])
    assert personal.unknown_words("a sks teddy bear on the left") == []
    assert bundled.unknown_words("a sks circle") == ["sks"]


def test_class_nouns_outside_the_models_classes_get_a_hint(bundled) -> None:
    assert vocabulary.class_hints(bundled, "shapes-v1", " Circle ") == []
    [hint] = vocabulary.class_hints(bundled, "shapes-v1", "dog")
    assert (hint.code, hint.field, hint.words) == ("unknown_class", "class_noun", ["dog"])
    assert "circle, square, triangle, star" in hint.message
