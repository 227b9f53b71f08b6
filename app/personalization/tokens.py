"""Subject identifier tokens: rare words a prompt uses to name one user's subject.

Pure Python (the web process hands tokens out when a subject is created): a candidate is
usable when the base model's tokenizer has it as one whole word, read from its vocab.json.
The bundled model's tokenizer learned all of RARE_IDENTIFIERS as single tokens and never
saw them in a caption; for real Stable Diffusion checkpoints the same check finds the ones
CLIP's vocabulary holds whole ("sks" is the usual DreamBooth choice).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

RARE_IDENTIFIERS: tuple[str, ...] = (
    "sks", "zwx", "qlo", "vbr", "kjp", "xqz", "pfy", "wmv", "yzt", "jxh",
    "qtv", "bxk", "zpl", "hqv", "vzk", "xjw", "kqf", "gzx", "wqj", "fxv",
    "zvq", "jqp", "xkz", "qwz", "vxj", "pzq", "yxk", "zjf", "kxv", "qzm",
    "vqy", "xzp", "jvk", "wzx", "qxf", "zkw",
)


@lru_cache(maxsize=8)
def usable_identifiers(base_model: Path) -> tuple[str, ...]:
    vocab_file = Path(base_model) / "tokenizer" / "vocab.json"
    if not vocab_file.exists():
        return RARE_IDENTIFIERS
    vocab = json.loads(vocab_file.read_text())
    return tuple(word for word in RARE_IDENTIFIERS if f"{word}</w>" in vocab)


def pick_token(base_model: Path, taken: set[str]) -> str:
    """The first usable identifier this user does not use yet."""
    candidates = usable_identifiers(Path(base_model)) or RARE_IDENTIFIERS
    for word in candidates:
        if word not in taken:
            return word
    # more subjects than identifiers: two rare words together are still unique and rare
    for first in candidates:
        for second in candidates:
            if f"{first} {second}" not in taken:
                return f"{first} {second}"
    raise ValueError("no free subject identifier left")
