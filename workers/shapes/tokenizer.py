"""The bundled model's tokenizer: byte-level BPE in CLIP's format, trained on the captions.

Saved so that `transformers.CLIPTokenizer` loads it from the model folder like any Stable
Diffusion tokenizer. Byte-level BPE means an unseen word still splits into known pieces
(never an error). A set of rare identifiers is learned as whole tokens but never appears in
the base training captions, so personalization can hand them out as subject tokens whose
embeddings carry no meaning yet.
"""
from __future__ import annotations

import random
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from app.personalization.tokens import RARE_IDENTIFIERS
from workers.shapes.captions import random_caption
from workers.shapes.world import random_scene

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 32
# the subject identifiers personalization hands out (one list, shared with the web process)
RESERVED_IDENTIFIERS = RARE_IDENTIFIERS
# CLIP's pre-tokenizer: words, single digits and runs of punctuation
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def caption_corpus(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [random_caption(random_scene(rng), rng) for _ in range(count)]


def train_tokenizer(out_dir: Path, seed: int = 0, vocab_size: int = 1000) -> Path:
    """Train and save vocab.json/merges.txt (+ tokenizer.json) loadable by CLIPTokenizer."""
    tokenizer = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token=EOS))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    # every identifier appears often enough to become one token; punctuation and case
    # variants are already in the captions
    corpus = caption_corpus(20_000, seed) + [" ".join(RESERVED_IDENTIFIERS)] * 50
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return save_as_clip(tokenizer, out_dir)


def save_as_clip(tokenizer: Tokenizer, out_dir: Path) -> Path:
    import json

    from transformers import CLIPTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    clip = CLIPTokenizer(vocab=model["vocab"], merges=merges, model_max_length=MAX_LENGTH)
    clip.save_pretrained(str(out_dir))
    # the classic slow-tokenizer files too, for tools that read vocab.json + merges.txt
    (out_dir / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    merge_lines = [" ".join(m) for m in merges]
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merge_lines) + "\n")
    return out_dir
