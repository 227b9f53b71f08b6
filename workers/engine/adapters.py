"""LoRA personal models as adapters on the one warm base pipeline, switched per run.

A LoRA personal model is a few MB of low-rank weights; fusing each into a private copy of the
base's UNet (what the cache did before) costs a whole UNet per user and a reload per switch.
Here every LoRA of a base is loaded once into that base's own UNet and text encoder as a named
peft adapter (diffusers' `load_lora_weights(adapter_name=...)`), and a run switches which one
is active by flipping flags on the adapter layers: milliseconds, no weights copied. The base's
weights exist once per worker and profile.

Adapters are kept in an LRU bounded by their bytes (the `adapter_cache_mb` setting); evicting
one deletes its layers from the modules (`delete_adapters`).

Backends: the adapter layers live in the PyTorch modules, so a personal LoRA's UNet (and its
text encoder where the LoRA touches it) runs on PyTorch even when the base runs compiled on
OpenVINO; the base's compiled text encoder (for LoRAs that leave it alone) and decoder are
still used (AdapterBackend). Compiled graphs cannot take the adapters without a recompile per
model (OpenVINO has no weight swap for a compiled model here); bench/adapters.py measures
what this costs against the base.

Because the adapter layers are shared state of the base's modules, every run on a base -
the base itself, its full fine-tunes (which share its text encoder) and its adapters - holds
the base's lock and sets the active adapter (or none) first: one adapter per batch.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from app.catalog.checkpoint import IncompatibleModel
from workers.engine.backends import Backend, TorchBackend
from workers.engine.families import torch_backend

logger = logging.getLogger(__name__)

LORA_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")  # the last: SDXL's second encoder


def adapter_name(folder: Path, weights: Path) -> str:
    """A name unique to the folder and this version of its file (a retrained model is new)."""
    stat = weights.stat()
    return "p" + hashlib.sha256(f"{folder}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


@dataclass
class Adapter:
    name: str
    nbytes: int
    touches_text_encoder: bool
    backend: Backend  # its own object: text embeddings are cached per backend (sampling._embed)


class AdapterBackend:
    """The base's backend with the UNet (and, for a LoRA on it, the text encoder) on PyTorch,
    where the active adapter's layers are."""

    def __init__(self, base: Backend, torch_backend: TorchBackend, touches_text_encoder: bool):
        self.base, self.torch = base, torch_backend
        # what encodes this model's prompts; sampling caches text embeddings per text backend,
        # so a LoRA that leaves the text encoder alone shares the base's cached embeddings
        self.text_backend: Backend = torch_backend if touches_text_encoder else base
        self.name = f"{torch_backend.name}+lora" if base is torch_backend else f"{torch_backend.name}+lora/{base.name}"

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    input_ids_2: torch.Tensor | None = None) -> torch.Tensor:
        return self.text_backend.encode_text(input_ids, attention_mask, input_ids_2)

    def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.torch.predict_noise(model_input, t, embeddings)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.base.decode(latents)


class AdapterSet:
    """The adapters loaded into one base pipeline's modules, and which one is active."""

    def __init__(self, pipe, base_backend: Backend, torch_backend: TorchBackend, max_bytes: int):
        self.pipe, self.base_backend, self.torch_backend = pipe, base_backend, torch_backend
        self.max_bytes = max_bytes
        self.lock = threading.RLock()  # held for a whole run: the active adapter is shared state
        self._adapters: OrderedDict[str, Adapter] = OrderedDict()
        self._layers: list = []  # the peft layers of the base's modules (found after each load)
        self._active: str | None = None

    @property
    def loaded(self) -> list[str]:
        """Adapter names, least recently used first."""
        return list(self._adapters)

    @property
    def nbytes(self) -> int:
        return sum(adapter.nbytes for adapter in self._adapters.values())

    def get(self, folder: Path, weights: Path, touches_text_encoder: bool) -> Adapter:
        """The adapter for a LoRA file, loaded into the base's modules on first use."""
        name = adapter_name(folder, weights)
        with self.lock:
            if name in self._adapters:
                self._adapters.move_to_end(name)
                return self._adapters[name]
            self._load(folder, weights, name)
            self._layers = _adapter_layers(self.pipe)
            for layer in self._layers:  # inference only (loading marks the new adapter trainable)
                for attribute in layer.adapter_layer_names:
                    if name in getattr(layer, attribute):
                        getattr(layer, attribute)[name].requires_grad_(False)
            self._active = "?"  # loading activates the new adapter; the next run sets its own
            backend = AdapterBackend(self.base_backend, self._fresh_torch_backend(), touches_text_encoder)
            adapter = Adapter(name, _adapter_bytes(self._layers, name), touches_text_encoder, backend)
            self._adapters[name] = adapter
            logger.info("adapter %s (%s, %.1f MB) loaded on %s", name, folder, adapter.nbytes / 2**20,
                        self.pipe.name_or_path)
            self._evict(keep=name)
            return adapter

    def _load(self, folder: Path, weights: Path, name: str) -> None:
        """Load a LoRA file as adapter `name`; one made for another model is named as such."""
        try:
            self.pipe.load_lora_weights(str(weights.parent), weight_name=weights.name, adapter_name=name)
        except (RuntimeError, ValueError, KeyError) as problem:
            logger.warning("adapter %s (%s) does not load on %s: %s", name, folder, self.pipe.name_or_path, problem)
            with contextlib.suppress(Exception):  # whatever layers it did add go with it
                self.pipe.delete_adapters(name)
            raise IncompatibleModel("This personal model's LoRA does not fit this base model: it was made for "
                                    "another base model or family.") from None

    def _fresh_torch_backend(self) -> TorchBackend:
        base = self.torch_backend
        return torch_backend(base.pipe, base.profile, base.device, base.decoder)

    def _evict(self, keep: str) -> None:
        while self.nbytes > self.max_bytes and len(self._adapters) > 1:
            name = next(iter(self._adapters))
            if name == keep:
                break
            self.pipe.delete_adapters(name)
            del self._adapters[name]
            logger.info("adapter %s evicted (cache over %.0f MB)", name, self.max_bytes / 2**20)
        self._layers = _adapter_layers(self.pipe)

    @contextlib.contextmanager
    def active(self, name: str | None) -> Iterator[None]:
        """Hold the base for one run with `name` (or no adapter) active."""
        with self.lock:
            self.activate(name)
            yield

    def activate(self, name: str | None) -> None:
        """Switch the active adapter (None: the base's own weights); a no-op when it already is.

        Two flags per layer, set directly: peft's set_adapter/enable_adapters also toggle
        requires_grad on every adapter of every layer, O(layers x adapters) (15 ms with 8
        adapters on the bundled model, measured), which inference never needs.
        """
        with self.lock:
            if name == self._active:
                return
            for layer in self._layers:
                layer._disable_adapters = name is None
                if name is not None:
                    layer._active_adapter = [name]
            self._active = name


def _adapter_layers(pipe) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for component in LORA_COMPONENTS if getattr(pipe, component, None) is not None
            for module in getattr(pipe, component).modules() if isinstance(module, BaseTunerLayer)]


def _adapter_bytes(layers: list, name: str) -> int:
    total = 0
    for layer in layers:
        for attribute in layer.adapter_layer_names:
            part = getattr(layer, attribute)
            if name in part:
                total += sum(p.numel() * p.element_size() for p in part[name].parameters())
    return total
