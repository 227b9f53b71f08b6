"""Captions in the SHAPES.md grammar, with the variation real users type.

    a [small|large] COLOR SHAPE [POSITION] [on a BG background]

Medium size has no word and an omitted position means the centre, so a caption may leave
those out only when the picture has that default; the background may always be left out
(the picture then has any background). Wrappers, articles, letter case and trailing
punctuation vary at random so that the model learns to ignore them.
"""
from __future__ import annotations

import random

from workers.shapes.world import POSITION_PHRASES, Scene

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
