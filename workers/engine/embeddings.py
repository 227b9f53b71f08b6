"""Prompt embeddings, remembered: an LRU keyed by the model and the text.

Nearly every request has the same (empty) negative prompt, and a busy service sees the same
prompts again and again (a prompt list, "again" on the page, one user's flood); each is one
text-encoder pass that a hit skips. The key names the loaded text encoder that made an entry
(`encoder`: the backend object, tracked weakly and numbered once, so an entry can never outlive
its model into another one's) and the model (`model_key`: a personal model's folder where its
adapter changes the shared text encoder), and the text. `stats` counts hits and misses and
the time the misses took, so the saving is measured, not guessed (bench/throughput.py).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

DEFAULT_CAPACITY = 512  # 512 texts x 77 tokens x 768 fp32 (SD 1.x) is about 120 MB at most


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    encode_s: float = 0.0  # seconds the misses spent in the text encoder

    @property
    def saved_s(self) -> float:
        """What the hits would have cost, at the misses' mean encode time."""
        return self.hits * self.encode_s / self.misses if self.misses else 0.0


class EmbeddingCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.stats = CacheStats()
        self._entries: OrderedDict[tuple[int, Hashable, str], torch.Tensor] = OrderedDict()
        self._encoders: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def get(self, encoder: object, model_key: Hashable, text: str, encode: Callable[[str], torch.Tensor]) -> torch.Tensor:
        with self._lock:
            number = self._encoders.get(encoder)
            if number is None:
                number = self._encoders[encoder] = next(self._numbers)
            key = (number, model_key, text)
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return found
        started = time.perf_counter()
        embedding = encode(text)
        with self._lock:
            self.stats.misses += 1
            self.stats.encode_s += time.perf_counter() - started
            self._entries[key] = embedding
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return embedding

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)


prompt_embeddings = EmbeddingCache()
