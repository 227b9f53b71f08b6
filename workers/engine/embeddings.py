"""Prompt embeddings, remembered: an LRU keyed by the model and the text.

Nearly every request has the same (empty) negative prompt, and a busy service sees the same
prompts again and again (a prompt list, "again" on the page, one user's flood); each is one
text-encoder pass that a hit skips. The key names the model (base and personal folder) and
the backend that encoded it, since a personal model's text encoder, or another backend's
precision, gives other embeddings for the same text. `stats` counts hits and misses and the
time the misses took, so the saving is measured, not guessed (bench/throughput.py prints it).
"""

from __future__ import annotations

import threading
import time
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
        self._entries: OrderedDict[tuple[Hashable, str], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_key: Hashable, text: str, encode: Callable[[str], torch.Tensor]) -> torch.Tensor:
        key = (model_key, text)
        with self._lock:
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
