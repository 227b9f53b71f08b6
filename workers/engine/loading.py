"""Loading pipelines from local folders, once per process, and keeping them warm.

Loading a real SD folder takes seconds and its weights are most of a worker's memory, so a
worker process loads each base model once per profile and keeps it. Personal models
(DreamBooth outputs) are small deltas on a base: they share the base's VAE, tokenizer and,
where untouched, text encoder and UNet, and only their own parts are loaded. A few of them
stay warm in an LRU; evicting one frees only its own parts.

A personal model folder holds any of:
- `unet/` and/or `text_encoder/`: full fine-tunes of those parts (diffusers format);
- `pytorch_lora_weights.safetensors`: a peft LoRA (as diffusers' DreamBooth LoRA script
  writes it), fused into a private copy of the base's UNet / text encoder at load so that
  sampling costs exactly what the base costs (on the compiled backend too: the fused copy is
  compiled like a full fine-tune, see backend_choice).

Each loaded pipeline carries the backend that runs its networks (backends.py), chosen at
load by backend_choice.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.catalog.model_card import ModelDefaults, model_defaults
from workers.engine.backend_choice import BackendSettings, load_fast_decoder, prepare_base, prepare_personal
from workers.engine.backends import Backend, TorchBackend
from workers.engine.profiles import DEFAULT_PROFILE, Profile, pick_device, resolve_profile

logger = logging.getLogger(__name__)

LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
DEFAULT_PERSONAL_CACHE_SIZE = 4


@dataclass(frozen=True)
class ModelRef:
    """Which weights to generate with: a base folder plus an optional personal folder."""

    base: Path
    personal: Path | None = None
    name: str | None = None  # shown in PNG metadata ("Model: ..."); see LoadedPipeline


@dataclass
class LoadedPipeline:
    """A ready pipeline with the profile its weights were prepared for."""

    pipe: Any  # diffusers.StableDiffusionPipeline
    ref: ModelRef
    profile: Profile
    device: torch.device
    defaults: ModelDefaults  # the base model's sampling defaults and name
    backend: Backend | None = None  # None: the pipeline's own modules (TorchBackend)

    def runner(self) -> Backend:
        return self.backend if self.backend is not None else TorchBackend(self.pipe, self.profile, self.device)

    @property
    def display_name(self) -> str:
        """The ref's name, else the personal folder's name, else the base model's card name."""
        if self.ref.name:
            return self.ref.name
        return Path(self.ref.personal).name if self.ref.personal else self.defaults.name


@dataclass(frozen=True)
class PersonalParts:
    """What a personal model folder replaces."""

    unet: bool
    text_encoder: bool
    lora: Path | None
    lora_touches_text_encoder: bool


def _require_folder(path: Path, what: str, marker: str) -> None:
    if not (path / marker).exists():
        raise FileNotFoundError(f"{what}: {path} is not a model folder (no {marker})")


def load_base_pipeline(path: Path, profile: Profile, device: torch.device,
                       settings: BackendSettings | None = None) -> tuple[object, Backend]:
    """Read a diffusers SD folder from disk (never the hub), prepare it for `profile`, and
    choose its backend (backend_choice.prepare_base)."""
    from diffusers import StableDiffusionPipeline

    _require_folder(path, "model", "model_index.json")
    pipe = StableDiffusionPipeline.from_pretrained(
        path,
        local_files_only=True,
        dtype=torch.float32,
        # The product is its own safety gate; the checker would also cost a CLIP vision pass.
        safety_checker=None,
        requires_safety_checker=False,
    )
    decoder = load_fast_decoder(path, model_defaults(path).fast_decoder, profile)
    backend = prepare_base(pipe, profile, device, settings or BackendSettings(), decoder)
    return pipe, backend


def inspect_personal_folder(folder: Path) -> PersonalParts:
    """Find out which parts a personal model folder replaces."""
    lora = folder / LORA_WEIGHTS_NAME
    parts = PersonalParts(
        unet=(folder / "unet" / "config.json").exists(),
        text_encoder=(folder / "text_encoder" / "config.json").exists(),
        lora=lora if lora.exists() else None,
        lora_touches_text_encoder=lora.exists() and _lora_has_text_encoder_keys(lora),
    )
    if not (parts.unet or parts.text_encoder or parts.lora):
        raise FileNotFoundError(
            f"personal model: {folder} has no unet/, text_encoder/ or {LORA_WEIGHTS_NAME}"
        )
    return parts


def _lora_has_text_encoder_keys(lora_file: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(lora_file), framework="pt") as weights:
        # diffusers/peft name them "text_encoder.*"; kohya-style files "lora_te_*".
        return any(k.startswith(("text_encoder", "lora_te")) for k in weights.keys())  # noqa: SIM118 - safe_open is not iterable


def _fresh_part(part: str, personal: Path, base: Path, use_personal: bool):
    """A private fp32 copy of one part, from the personal folder or re-read from the base.

    Re-reading from disk rather than deep-copying the cached module matters: the cached one
    may already be quantized or compiled, and LoRA must be fused into plain weights.
    """
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    model_class = UNet2DConditionModel if part == "unet" else CLIPTextModel
    source = personal if use_personal else base
    return model_class.from_pretrained(source / part, local_files_only=True, dtype=torch.float32)


def load_personal_pipeline(base: LoadedPipeline, folder: Path) -> tuple[object, list[str]]:
    """A new pipeline object that shares the base's parts and owns only the personal ones,
    still in fp32 (prepare_personal casts or compiles the owned parts, named in the list)."""
    from diffusers import StableDiffusionPipeline

    parts = inspect_personal_folder(folder)
    # 1. Decide which parts this model owns; everything else is the base's object.
    owned = {"unet": parts.unet or parts.lora is not None}
    owned["text_encoder"] = parts.text_encoder or parts.lora_touches_text_encoder
    modules = {
        name: _fresh_part(name, folder, base.ref.base, getattr(parts, name)) if own
        else getattr(base.pipe, name)
        for name, own in owned.items()
    }
    # 2. Assemble around the shared VAE, tokenizer and scheduler config.
    pipe = StableDiffusionPipeline(
        vae=base.pipe.vae,
        text_encoder=modules["text_encoder"],
        tokenizer=base.pipe.tokenizer,
        unet=modules["unet"],
        scheduler=base.pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # 3. Fuse LoRA into the private copies and drop the adapter layers (no per-step cost).
    if parts.lora is not None:
        components = [name for name, own in owned.items() if own]
        pipe.load_lora_weights(str(folder), weight_name=LORA_WEIGHTS_NAME)
        pipe.fuse_lora(components=components)
        pipe.unload_lora_weights()
    return pipe, [name for name, own in owned.items() if own]


class PipelineCache:
    """Process-wide warm pipelines: every base kept, personal models in a small LRU.

    A lock makes loading safe under a threaded worker pool; sampling itself never mutates a
    cached pipeline (each run builds its own scheduler), so it needs no lock.
    """

    def __init__(
        self,
        max_personal: int = DEFAULT_PERSONAL_CACHE_SIZE,
        device: torch.device | None = None,
        compile_unet: bool = False,
        backend: BackendSettings | None = None,
    ):
        self.max_personal = max_personal
        self.device = device or pick_device()
        self.compile_unet = compile_unet
        self.backend = backend or BackendSettings()
        self._bases: dict[tuple[Path, str], LoadedPipeline] = {}
        self._personal: OrderedDict[tuple[Path, Path, str], LoadedPipeline] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, ref: ModelRef, profile_name: str = DEFAULT_PROFILE) -> LoadedPipeline:
        profile = resolve_profile(profile_name, self.device, self.compile_unet)
        with self._lock:
            base = self._get_base(Path(ref.base).resolve(), profile)
            if ref.personal is None:
                return LoadedPipeline(base.pipe, ref, profile, self.device, base.defaults, base.backend)
            return self._get_personal(base, Path(ref.personal).resolve(), ref)

    def _get_base(self, path: Path, profile: Profile) -> LoadedPipeline:
        key = (path, profile.name)
        if key not in self._bases:
            logger.info("loading base model %s for profile %s", path, profile.name)
            pipe, backend = load_base_pipeline(path, profile, self.device, self.backend)
            defaults = model_defaults(path)
            self._bases[key] = LoadedPipeline(pipe, ModelRef(base=path), profile, self.device, defaults, backend)
        return self._bases[key]

    def _get_personal(self, base: LoadedPipeline, folder: Path, ref: ModelRef) -> LoadedPipeline:
        key = (base.ref.base, folder, base.profile.name)
        if key in self._personal:
            self._personal.move_to_end(key)
        else:
            logger.info("loading personal model %s on %s", folder, base.ref.base)
            pipe, owned = load_personal_pipeline(base, folder)
            backend = prepare_personal(base.runner(), pipe, base.profile, self.device, owned, self.backend)
            self._personal[key] = LoadedPipeline(pipe, ref, base.profile, self.device, base.defaults, backend)
            self._evict()
        cached = self._personal[key]
        return LoadedPipeline(cached.pipe, ref, cached.profile, cached.device, cached.defaults, cached.backend)

    def _evict(self) -> None:
        while len(self._personal) > self.max_personal:
            evicted_key, _ = self._personal.popitem(last=False)
            logger.info("evicting personal model %s", evicted_key[1])
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def personal_keys(self) -> list[tuple[Path, Path, str]]:
        """Cached personal models, least recently used first (for tests and diagnostics)."""
        return list(self._personal)

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()
            self._personal.clear()


_process_cache = PipelineCache()


def get_pipeline(ref: ModelRef, profile_name: str = DEFAULT_PROFILE) -> LoadedPipeline:
    """The warm pipeline for `ref` in this process, loading it on first use."""
    return _process_cache.get(ref, profile_name)


def process_cache() -> PipelineCache:
    return _process_cache


def configure_process_cache(max_personal: int = DEFAULT_PERSONAL_CACHE_SIZE, compile_unet: bool = False,
                            backend: BackendSettings | None = None) -> None:
    """Replace this process's cache with one set up from worker settings (at worker start)."""
    global _process_cache
    _process_cache = PipelineCache(max_personal=max_personal, compile_unet=compile_unet, backend=backend)
