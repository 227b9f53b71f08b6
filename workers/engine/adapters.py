"""LoRA personal models as adapters on the one warm base pipeline, switched per run.

A LoRA personal model is a few MB of low-rank weights; fusing each into a private copy of the
base's UNet (what the cache did before) costs a whole UNet per user and a reload per switch.
Here the base's UNet and text encoder carry one peft adapter slot per LoRA layer; each LoRA file
is loaded once (diffusers' `load_lora_weights`, under a passing name) and kept as its tensors
only, and a run makes one active by pointing the slot's parameters at its tensors and setting
two flags per layer: milliseconds, no weights copied, no peft module objects per adapter. The
base's weights exist once per worker and profile.

Adapters are kept in an LRU bounded by their bytes (the `adapter_cache_mb` setting); evicting
one drops its tensors.

Backends: the adapter slot lives in the PyTorch modules, so a personal LoRA's UNet (and its
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
        self.static_shapes = base.static_shapes or torch_backend.static_shapes

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    input_ids_2: torch.Tensor | None = None) -> torch.Tensor:
        return self.text_backend.encode_text(input_ids, attention_mask, input_ids_2)

    def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.torch.predict_noise(model_input, t, embeddings)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.base.decode(latents)


class AdapterSet:
    """The adapters loaded for one base pipeline, and which one is active.

    The base's modules carry one adapter slot (`SLOT`) per LoRA layer; each cached adapter is
    only its tensors (`_weights`), and activating one points the slot's parameters at them.
    Keeping every adapter as peft layers of its own costs module objects per layer and adapter
    (2.35x the file per extra model, measured); this keeps about the weights themselves.
    """

    def __init__(self, modules, base_backend: Backend, max_bytes: int):
        self.modules, self.base_backend = modules, base_backend  # modules: loading.TorchModules
        self.max_bytes = max_bytes
        self.lock = threading.RLock()  # held for a whole run: the active adapter is shared state
        self._adapters: OrderedDict[str, Adapter] = OrderedDict()
        self._weights: dict[str, AdapterWeights] = {}
        self._layers: list = []  # the peft layers that have the slot
        self._active: str | None = None

    @property
    def pipe(self):  # the base's PyTorch modules are read with its first adapter
        return self.modules.pipe

    @property
    def torch_backend(self) -> TorchBackend:
        return self.modules.backend()

    @property
    def loaded(self) -> list[str]:
        """Adapter names, least recently used first."""
        return list(self._adapters)

    @property
    def nbytes(self) -> int:
        return sum(adapter.nbytes for adapter in self._adapters.values())

    @property
    def layers(self) -> int:
        return len(self._layers)

    def get(self, folder: Path, weights: Path, touches_text_encoder: bool) -> Adapter:
        """The adapter for a LoRA file, loaded on first use."""
        name = adapter_name(folder, weights)
        with self.lock:
            if name in self._adapters:
                self._adapters.move_to_end(name)
                return self._adapters[name]
            self._weights[name] = self._load(folder, weights, name)
            self._layers = [layer for layer in _adapter_layers(self.pipe) if SLOT in layer.lora_A]
            self._active = "?"  # loading changed the slot's state; the next run sets its own
            backend = AdapterBackend(self.base_backend, self._fresh_torch_backend(), touches_text_encoder)
            adapter = Adapter(name, self._weights[name].nbytes, touches_text_encoder, backend)
            self._adapters[name] = adapter
            logger.info("adapter %s (%s, %.1f MB) loaded on %s", name, folder, adapter.nbytes / 2**20,
                        self.pipe.name_or_path)
            self._evict(keep=name)
            return adapter

    def _load(self, folder: Path, weights: Path, name: str) -> AdapterWeights:
        """A LoRA file's tensors: loaded by diffusers under a passing name, taken out of its
        layers (which then go); a layer without the slot yet keeps them as its slot."""
        try:
            self.pipe.load_lora_weights(str(weights.parent), weight_name=weights.name, adapter_name=LOADING)
            return _take_weights(self.pipe)
        except (RuntimeError, ValueError, KeyError) as problem:
            logger.warning("adapter %s (%s) does not load on %s: %s", name, folder, self.pipe.name_or_path, problem)
            raise IncompatibleModel("This personal model's LoRA does not fit this base model: it was made for "
                                    "another base model or family.") from None
        finally:
            _drop_adapter(self.pipe, LOADING)  # whatever layers it added and were not taken

    def _fresh_torch_backend(self) -> TorchBackend:
        base = self.torch_backend
        return torch_backend(base.pipe, base.profile, base.device, base.decoder)

    def _evict(self, keep: str) -> None:
        while self.nbytes > self.max_bytes and len(self._adapters) > 1:
            name = next(iter(self._adapters))
            if name == keep:
                break
            del self._adapters[name], self._weights[name]
            if self._active == name:
                self._active = "?"  # its tensors go once the slot points elsewhere (the next run)
            logger.info("adapter %s evicted (cache over %.0f MB)", name, self.max_bytes / 2**20)

    @contextlib.contextmanager
    def active(self, name: str | None) -> Iterator[None]:
        """Hold the base for one run with `name` (or no adapter) active."""
        with self.lock:
            self.activate(name)
            yield

    def activate(self, name: str | None) -> None:
        """Switch the active adapter (None: the base's own weights); a no-op when it already is.

        The slot's parameters are pointed at the adapter's tensors (no copy) and two flags set
        per layer; layers the adapter does not touch run without the slot. peft's
        set_adapter/enable_adapters also toggle requires_grad on every adapter of every layer
        (15 ms with 8 adapters on the bundled model, measured), which inference never needs.
        """
        with self.lock:
            if name == self._active:
                return
            weights = self._weights[name] if name is not None else None
            if weights is not None:
                for parameter, tensor in weights.tensors:
                    parameter.data = tensor
            for layer in self._layers:
                scaling = weights.scaling.get(layer) if weights is not None else None
                layer._disable_adapters = scaling is None
                if scaling is not None:
                    layer.scaling[SLOT] = scaling
                    layer._active_adapter = [SLOT]
            self._active = name


SLOT = "personal"  # the one adapter slot of each LoRA layer of a base
LOADING = "loading"  # the passing name a LoRA file is loaded under


@dataclass
class AdapterWeights:
    """One adapter as tensors: what each slot parameter points at, and each layer's scaling."""

    tensors: list[tuple[torch.nn.Parameter, torch.Tensor]]
    scaling: dict  # layer -> its scaling (alpha / rank); a layer not in it is not touched

    @property
    def nbytes(self) -> int:
        return sum(tensor.numel() * tensor.element_size() for _, tensor in self.tensors)


def _take_weights(pipe) -> AdapterWeights:
    """The tensors of the adapter loaded as LOADING; its layers become the slot where a layer
    has none yet (the first adapter, or one touching layers no adapter before it did)."""
    tensors: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    scaling = {}
    for component in LORA_COMPONENTS:  # the config a later load checks its own against
        config = getattr(getattr(pipe, component, None), "peft_config", None)
        if isinstance(config, dict) and LOADING in config:
            config.setdefault(SLOT, config[LOADING])
    for layer in _adapter_layers(pipe):
        if LOADING not in layer.lora_A:
            continue
        if LOADING in getattr(layer, "lora_variant", {}) or LOADING in layer.lora_embedding_A:
            raise ValueError("only plain LoRA layers are served as adapters (no DoRA or embedding LoRA)")
        if SLOT not in layer.lora_A:
            for attribute in layer.adapter_layer_names + layer.other_param_names:
                container = getattr(layer, attribute)
                if LOADING in container:
                    container[SLOT] = container.pop(LOADING)
        for attribute in ("lora_A", "lora_B"):
            new = dict(getattr(layer, attribute)[LOADING].named_parameters()) \
                if LOADING in getattr(layer, attribute) else dict(getattr(layer, attribute)[SLOT].named_parameters())
            slot = dict(getattr(layer, attribute)[SLOT].named_parameters())
            if new.keys() != slot.keys():
                raise ValueError(f"LoRA layer parts differ from the slot's ({sorted(new)} vs {sorted(slot)})")
            for key, parameter in slot.items():
                parameter.requires_grad_(False)
                tensors.append((parameter, new[key].detach()))
        scaling[layer] = layer.scaling.get(LOADING, layer.scaling[SLOT])
    return AdapterWeights(tensors, scaling)


def _drop_adapter(pipe, name: str) -> None:
    """Remove adapter `name` from every layer and peft config of the pipeline's modules."""
    for layer in _adapter_layers(pipe):
        for attribute in layer.adapter_layer_names + layer.other_param_names:
            container = getattr(layer, attribute)
            if name in container:
                del container[name]
    for component in LORA_COMPONENTS:
        config = getattr(getattr(pipe, component, None), "peft_config", None)
        if isinstance(config, dict):
            config.pop(name, None)


def _adapter_layers(pipe) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for component in LORA_COMPONENTS if getattr(pipe, component, None) is not None
            for module in getattr(pipe, component).modules() if isinstance(module, BaseTunerLayer)]

