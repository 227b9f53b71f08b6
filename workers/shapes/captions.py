"""Captions in the docs/SHAPES.md grammar, with the variation real users type.

    a [small|large] COLOR SHAPE [POSITION] [on a BG background]

Medium size has no word and an omitted position means the centre, so a caption may leave
those out only when the picture has that default; the background may always be left out
(the picture then has any background). Wrappers, articles, letter case and trailing
punctuation vary at random so that the model learns to ignore them.
"""
from __future__ import annotations

import random

from workers.shapes.world import COLORS, POSITION_PHRASES, SHAPES, SIZE_NAMES, Scene

WRAPPERS: tuple[str, ...] = ("photo", "image", "picture", "drawing")
PUNCTUATION: tuple[str, ...] = ("", "", "", ".", "!", "?")


def article(next_word: str) -> str:
    return "an" if next_word[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def core_phrase(scene: Scene) -> str:
    words = [scene.size] if scene.size != "medium" else []
    return " ".join([*words, scene.color, scene.shape])


def canonical_caption(scene: Scene) -> str:
    """The plain prompt that states all five attributes (used by the eval)."""
    parts = [with_article(core_phrase(scene)), POSITION_PHRASES[scene.position]]
    parts.append(f"on {with_article(scene.background + ' background')}")
    return " ".join(parts)


def random_caption(scene: Scene, rng: random.Random, background_p: float = 0.85) -> str:
    """A caption for `scene`: random wrapper, articles, case and punctuation."""
    core = core_phrase(scene)
    text = with_article(core) if rng.random() < 0.9 else core
    if scene.position != "center" or rng.random() < 0.5:
        text += " " + POSITION_PHRASES[scene.position]
    if rng.random() < background_p:
        text += f" on {with_article(scene.background + ' background')}"
    return decorate(text, rng)


def card_vocabulary() -> dict[str, object]:
    """What the model card says the model knows (`imagebooth_model.json`, key "vocabulary").

    Every word of every caption above is in one of these lists, so the web process can name
    the words of a prompt that the model never saw (app/catalog/vocabulary.py).
    """
    return {
        "pattern": "a [small|large] COLOUR SHAPE [POSITION] [on a COLOUR background]",
        "example": "a small blue star on the left on a yellow background",
        "groups": {
            "shapes": list(SHAPES),
            "colours": list(COLORS),
            "sizes": [size for size in SIZE_NAMES if size != "medium"],  # medium has no word
            "positions": list(POSITION_PHRASES.values()),
            "backgrounds": [f"on {with_article(color + ' background')}" for color in COLORS],
            "wrappers": [with_article(f"{wrapper} of") for wrapper in WRAPPERS],
        },
        "classes": list(SHAPES),
        "words": ["a", "an"],
    }


def decorate(text: str, rng: random.Random) -> str:
    """Wrap a caption the way people write prompts: 'A photo of ...', case, punctuation."""
    roll = rng.random()
    if roll < 0.4:
        wrapper = rng.choice(WRAPPERS) + " of"
        if rng.random() < 0.8:
            wrapper = with_article(wrapper)
        text = f"{wrapper} {text}"
    case = rng.random()
    if case < 0.2:
        text = text[:1].upper() + text[1:]
    elif case < 0.25:
        text = text.upper()
    elif case < 0.3:
        text = text.title()
    return text + rng.choice(PUNCTUATION)
