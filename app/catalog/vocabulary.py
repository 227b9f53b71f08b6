"""The words a model knows, from its card, and the words of a prompt it does not.

A base model's `imagebooth_model.json` may carry a "vocabulary": named groups of phrases (the
bundled model's shapes, colours, sizes, positions, backgrounds and wrappers), its class nouns
and the joining words. A word is known when it is a word of any of them. A folder without a
vocabulary (any real Stable Diffusion checkpoint) knows every word: no warnings.

Unknown words never block a request: they are hints (a 202 still runs the prompt), because
a model may still draw something useful and only the user can judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Words of letters or digits in any alphabet; punctuation and spaces separate them.
WORD = re.compile(r"[^\W_]+")
MAX_LISTED_WORDS = 12  # a message names at most this many


def words_of(text: str) -> list[str]:
    """The words of `text`, lower-cased, each once, in order of appearance."""
    return list(dict.fromkeys(word.casefold() for word in WORD.findall(text)))


@dataclass(frozen=True)
class Vocabulary:
    """What a card declares; `known` holds every word of it (plus a personal model's token)."""

    groups: dict[str, list[str]]
    classes: list[str]
    known: frozenset[str]
    pattern: str | None = None
    example: str | None = None

    def unknown_words(self, text: str) -> list[str]:
        return [word for word in words_of(text) if word not in self.known]

    def knows_class(self, noun: str) -> bool:
        return noun.strip().casefold() in {name.casefold() for name in self.classes}

    def with_words(self, extra: Iterable[str]) -> Vocabulary:
        """This vocabulary plus the words of `extra` (a personal model's token and class noun)."""
        added = {word for text in extra for word in words_of(text)}
        return Vocabulary(self.groups, self.classes, self.known | added, self.pattern, self.example)


def _phrases(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def from_card(card: Mapping[str, Any]) -> Vocabulary | None:
    """The card's vocabulary, or None when it declares none (or nothing readable)."""
    raw = card.get("vocabulary")
    if not isinstance(raw, dict):
        return None
    groups_raw = raw.get("groups")
    groups = {str(name): _phrases(items) for name, items in groups_raw.items()} if isinstance(groups_raw, dict) else {}
    classes = _phrases(raw.get("classes"))
    phrases = [*(item for items in groups.values() for item in items), *classes, *_phrases(raw.get("words"))]
    known = frozenset(word for phrase in phrases for word in words_of(phrase))
    if not known:
        return None
    text = {key: raw[key] if isinstance(raw.get(key), str) else None for key in ("pattern", "example")}
    return Vocabulary(groups, classes, known, text["pattern"], text["example"])


@dataclass(frozen=True)
class Hint:
    """A warning about a request's words: the model will likely ignore or misdraw them."""

    code: str  # "unknown_words" | "unknown_class"
    field: str  # the request field it is about: "prompt", "prompts" or "class_noun"
    message: str
    words: list[str]
    index: int | None = None  # which prompt of a prompt list


def _listed(words: list[str]) -> str:
    shown = ", ".join(f'"{word}"' for word in words[:MAX_LISTED_WORDS])
    return shown + (f" and {len(words) - MAX_LISTED_WORDS} more" if len(words) > MAX_LISTED_WORDS else "")


def prompt_hints(vocabulary: Vocabulary | None, model_name: str, prompts: list[str], as_list: bool) -> list[Hint]:
    """One hint per prompt that has words the model does not know (none without a vocabulary)."""
    if vocabulary is None:
        return []
    hints = []
    for index, prompt in enumerate(prompts):
        unknown = vocabulary.unknown_words(prompt)
        if not unknown:
            continue
        where = f"Prompt {index + 1}: the" if as_list else "The"
        message = (f"{where} model {model_name} does not know {_listed(unknown)}; it draws only what its card "
                   "lists, so the picture will likely ignore "
                   + ("it." if len(unknown) == 1 else "them."))
        hints.append(Hint("unknown_words", "prompts" if as_list else "prompt", message, unknown,
                          index if as_list else None))
    return hints


def class_hints(vocabulary: Vocabulary | None, model_name: str, class_noun: str) -> list[Hint]:
    """A hint when a subject's class noun is none of the model's classes."""
    if vocabulary is None or not vocabulary.classes or vocabulary.knows_class(class_noun):
        return []
    message = (f'The model {model_name} knows the classes {", ".join(vocabulary.classes)}, not "{class_noun.strip()}": '
               "a fine-tune learns the subject as a kind of thing the model can already draw, so it will likely "
               "draw it badly.")
    return [Hint("unknown_class", "class_noun", message, [class_noun.strip().casefold()])]
