"""Loading pipelines from local folders, once per process, and keeping them warm.

Loading a real SD folder takes seconds and its weights are most of a worker's memory, so a
worker process loads each base model once per profile and keeps it. Personal models
(DreamBooth outputs) are small deltas on a base. A personal model folder holds either:
- `unet/` and/or `text_encoder/` (SDXL: and `text_encoder_2/`): full fine-tunes of those parts (diffusers format), loaded
  as their own modules beside the base's shared VAE, tokenizer and untouched parts; a few
  stay warm in an LRU (`max_personal`), and evicting one frees only its own parts; or
- `pytorch_lora_weights.safetensors`: a peft LoRA (as diffusers' DreamBooth LoRA script
  writes it), served as an adapter on the base's own modules (adapters.py): no copy of any
  part, any number cached within `adapter_cache_mb`, switched per run in milliseconds.

Each loaded pipeline carries the backend that runs its networks (backends.py), chosen at
load by backend_choice, and what the sampling loop needs besides (model_info.py). Its PyTorch
modules (`TorchModules`) are read on first need: a worker whose compiled backend and A/B
result are in the compile cache serves the base without them, and a PyTorch run, a LoRA or a
full fine-tune reads them then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.catalog.model_card import CARD_NAME, LORA_FILE, ModelDefaults, model_defaults
from workers.engine.adapters import AdapterSet
from workers.engine.backend_choice import BackendSettings, load_fast_decoder, prepare_base, prepare_personal
from workers.engine.backends import Backend, TorchBackend
from workers.engine.families import check_personal_base, is_sdxl, model_kind, read_pipeline, torch_backend
from workers.engine.model_info import ModelInfo
from workers.engine.profiles import DEFAULT_PROFILE, Profile, apply_profile, pick_device, resolve_profile

logger = logging.getLogger(__name__)

LORA_WEIGHTS_NAME = LORA_FILE  # the name the fine-tune writes (app.catalog.model_card)
DEFAULT_PERSONAL_CACHE_SIZE = 4


@dataclass(frozen=True)
class ModelRef:
    """Which weights to generate with: a base folder plus an optional personal folder."""

    base: Path
    personal: Path | None = None
    name: str | None = None  # shown in PNG metadata ("Model: ..."); see LoadedPipeline


class TorchModules:
    """A model's PyTorch side: its diffusers pipeline, prepared for the profile, and the
    TorchBackend on it; read from disk on first need.

    Until the profile is applied, `fp32()` hands out the weights as read: what the compiled
    backend exports from (and a base compiling from cold reads them once for both).
    """

    def __init__(self, path: Path, profile: Profile, device: torch.device, pipe=None, decoder=None):
        self.path, self.profile, self.device = path, profile, device
        self._read: tuple[Any, Any] | None = (pipe, decoder) if pipe is not None else None
        self._backend: TorchBackend | None = None
        self._lock = threading.RLock()

    @classmethod
    def ready(cls, path: Path, backend: TorchBackend) -> TorchModules:
        modules = cls(path, backend.profile, backend.device)
        modules._backend = backend
        return modules

    @property
    def loaded(self) -> bool:
        return self._read is not None or self._backend is not None

    def fp32(self) -> tuple[Any, Any]:
        """(pipeline, fast decoder or None) as read, before the profile casts them."""
        with self._lock:
            if self._backend is not None:
                raise RuntimeError(f"{self.path}: the profile has been applied; the weights as read are gone")
            if self._read is None:
                logger.info("reading the PyTorch modules of %s", self.path)
                self._read = (read_pipeline(self.path, self.profile),
                              load_fast_decoder(self.path, model_defaults(self.path).fast_decoder, self.profile))
            return self._read

    def backend(self) -> TorchBackend:
        with self._lock:
            if self._backend is None:
                pipe, decoder = self.fp32()
                apply_profile(pipe, self.profile, self.device)
                if decoder is not None:
                    decoder.to(device=self.device, dtype=self.profile.vae_dtype).requires_grad_(False)
                self._backend, self._read = torch_backend(pipe, self.profile, self.device, decoder), None
            return self._backend

    @property
    def pipe(self):
        return self.backend().pipe


@dataclass
class LoadedPipeline:
    """A ready pipeline with the profile its weights were prepared for."""

    info: ModelInfo  # shapes, tokenizers, scheduler config: all the loop needs but the networks
    modules: TorchModules  # the PyTorch modules, read on first need
    ref: ModelRef
    profile: Profile
    device: torch.device
    defaults: ModelDefaults  # the base model's sampling defaults and name
    backend: Backend
    adapters: AdapterSet | None = None  # the base's adapters, when this pipeline shares its modules
    adapter: str | None = None  # the LoRA adapter this model runs with (None: the weights as loaded)

    @property
    def pipe(self):  # the diffusers pipeline (read now if it was not yet)
        return self.modules.pipe

    def runner(self) -> Backend:
        return self.backend

    def session(self) -> contextlib.AbstractContextManager:
        """Hold the shared base for one run, with this model's adapter (or none) active."""
        return contextlib.nullcontext() if self.adapters is None else self.adapters.active(self.adapter)

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
    text_encoder_2: bool  # SDXL's second, trained beside the first by a full fine-tune
    lora: Path | None
    lora_touches_text_encoder: bool


def load_base(path: Path, profile: Profile, device: torch.device,
              settings: BackendSettings | None = None) -> tuple[ModelInfo, TorchModules, Backend]:
    """A base model from disk (never the hub): its info, its (lazy) PyTorch modules and the
    backend chosen for `profile` (backend_choice.prepare_base). A diffusers folder's info is
    read from its files; a single file's from the pipeline diffusers builds of it."""
    fast_decoder = model_defaults(path).fast_decoder if profile.fast_decoder else None
    if model_kind(path).single_file:
        modules = TorchModules(path, profile, device)
        info = ModelInfo.of_pipeline(*modules.fp32())
    else:
        decoder_folder = path / fast_decoder if fast_decoder and (path / fast_decoder / "config.json").exists() else None
        info = ModelInfo.of_folder(path, decoder_folder)
        modules = TorchModules(path, profile, device)
    backend = prepare_base(info, modules, profile, device, settings or BackendSettings())
    return info, modules, backend


def inspect_personal_folder(folder: Path) -> PersonalParts:
    """Find out which parts a personal model folder replaces."""
    lora = folder / LORA_WEIGHTS_NAME
    parts = PersonalParts(
        unet=(folder / "unet" / "config.json").exists(),
        text_encoder=(folder / "text_encoder" / "config.json").exists(),
        text_encoder_2=(folder / "text_encoder_2" / "config.json").exists(),
        lora=lora if lora.exists() else None,
        lora_touches_text_encoder=lora.exists() and _lora_has_text_encoder_keys(lora),
    )
    if not (parts.unet or parts.text_encoder or parts.text_encoder_2 or parts.lora):
        raise FileNotFoundError(
            f"personal model: {folder} has no unet/, text_encoder/, text_encoder_2/ or {LORA_WEIGHTS_NAME}"
        )
    if parts.lora and (parts.unet or parts.text_encoder or parts.text_encoder_2):
        raise FileNotFoundError(f"personal model: {folder} holds both a LoRA and fine-tuned parts")
    return parts


def _lora_has_text_encoder_keys(lora_file: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(lora_file), framework="pt") as weights:
        # diffusers/peft name them "text_encoder.*" (SDXL's second "text_encoder_2.*");
        # kohya-style files "lora_te_*", "lora_te1_*", "lora_te2_*".
        return any(k.startswith(("text_encoder", "lora_te")) for k in weights.keys())  # noqa: SIM118 - safe_open is not iterable


def _fresh_part(part: str, personal: Path, base_pipe):
    """The personal folder's own copy of one part (prepare_personal casts or compiles it): fp32,
    except for SDXL, read in the base's dtype (an fp32 copy of its UNet would be 10 GB)."""
    import diffusers
    import transformers

    module = getattr(base_pipe, part)
    model_class = (diffusers.UNet2DConditionModel if part == "unet"
                   else getattr(transformers, type(getattr(module, "_orig_mod", module)).__name__))
    dtype = module.dtype if is_sdxl(base_pipe) else torch.float32
    return model_class.from_pretrained(personal / part, local_files_only=True, dtype=dtype)


def load_personal_pipeline(base: LoadedPipeline, folder: Path, parts: PersonalParts) -> tuple[object, list[str]]:
    """A new pipeline object of the base's class around a full fine-tune's own parts and the
    base's other ones."""
    owned = [name for name in ("unet", "text_encoder", "text_encoder_2") if getattr(parts, name)]
    modules = {name: _fresh_part(name, folder, base.pipe) for name in owned}
    extra = {} if is_sdxl(base.pipe) else {"requires_safety_checker": False}
    return type(base.pipe)(**{**base.pipe.components, **modules}, **extra), owned


def personal_card(folder: Path) -> dict:
    try:
        card = json.loads((folder / CARD_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


class PipelineCache:
    """Process-wide warm pipelines: every base kept, with its LoRA adapters (adapters.py);
    full fine-tunes' own parts in a small LRU.

    A lock makes loading safe under a threaded worker pool. A run holds its base's adapter
    lock (LoadedPipeline.session), since the active adapter is state of the shared modules;
    everything else a run needs is its own (each run builds its own scheduler).
    """

    def __init__(
        self,
        max_personal: int = DEFAULT_PERSONAL_CACHE_SIZE,
        device: torch.device | None = None,
        compile_unet: bool = False,
        backend: BackendSettings | None = None,
        adapter_cache_bytes: int | None = None,
    ):
        self.max_personal = max_personal
        self.device = device or pick_device()
        self.compile_unet = compile_unet
        self.backend = backend  # None: from the worker's settings, read at first load
        self.adapter_cache_bytes = adapter_cache_bytes
        self._bases: dict[tuple[Path, str], LoadedPipeline] = {}
        self._personal: OrderedDict[tuple[Path, Path, str], LoadedPipeline] = OrderedDict()
        self._parts: dict[Path, PersonalParts] = {}
        self._lock = threading.RLock()

    def get(self, ref: ModelRef, profile_name: str = DEFAULT_PROFILE) -> LoadedPipeline:
        profile = resolve_profile(profile_name, self.device, self.compile_unet)
        with self._lock:
            base = self._get_base(Path(ref.base).resolve(), profile)
            if ref.personal is None:
                return dataclasses.replace(base, ref=ref)
            folder = Path(ref.personal).resolve()
            parts = self._parts.get(folder) or inspect_personal_folder(folder)
            check_personal_base(personal_card(folder), base.pipe.unet, base.defaults.name)
            self._parts[folder] = parts
            if parts.lora is not None:
                assert base.adapters is not None  # every base has its adapter set
                adapter = base.adapters.get(folder, parts.lora, parts.lora_touches_text_encoder)
                return dataclasses.replace(base, ref=ref, backend=adapter.backend, adapter=adapter.name)
            return self._get_full_finetune(base, folder, parts, ref)

    def _get_base(self, path: Path, profile: Profile) -> LoadedPipeline:
        key = (path, profile.name)
        if key not in self._bases:
            logger.info("loading base model %s for profile %s", path, profile.name)
            info, modules, backend = load_base(path, profile, self.device, self._backend_settings())
            adapters = AdapterSet(modules, backend, self._adapter_budget())
            self._bases[key] = LoadedPipeline(info, modules, ModelRef(base=path), profile, self.device,
                                              model_defaults(path), backend, adapters)
        return self._bases[key]

    def _backend_settings(self) -> BackendSettings:
        if self.backend is not None:
            return self.backend
        from app.config import get_settings

        return BackendSettings(mode=get_settings().engine_backend)

    def _adapter_budget(self) -> int:
        if self.adapter_cache_bytes is not None:
            return self.adapter_cache_bytes
        from app.config import get_settings

        return int(get_settings().adapter_cache_mb * 2**20)

    def _get_full_finetune(self, base: LoadedPipeline, folder: Path, parts: PersonalParts,
                           ref: ModelRef) -> LoadedPipeline:
        key = (base.ref.base, folder, base.profile.name)
        if key in self._personal:
            self._personal.move_to_end(key)
        else:
            logger.info("loading personal model %s on %s", folder, base.ref.base)
            pipe, owned = load_personal_pipeline(base, folder, parts)
            backend, on_torch = prepare_personal(base.runner(), base.modules.backend(), base.info, pipe, folder,
                                                 base.profile, self.device, owned, self._backend_settings())
            self._personal[key] = dataclasses.replace(base, modules=TorchModules.ready(folder, on_torch), backend=backend)
            self._evict()
        # shares the base's text encoder or UNet: its runs hold the base with no adapter active
        return dataclasses.replace(self._personal[key], ref=ref)

    def _evict(self) -> None:
        while len(self._personal) > self.max_personal:
            evicted_key, _ = self._personal.popitem(last=False)
            logger.info("evicting personal model %s", evicted_key[1])
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def personal_keys(self) -> list[tuple[Path, Path, str]]:
        """Cached full fine-tunes, least recently used first (for tests and diagnostics)."""
        return list(self._personal)

    def adapter_set(self, base: Path, profile_name: str = DEFAULT_PROFILE) -> AdapterSet | None:
        """A loaded base's adapters (for tests, the bench and diagnostics)."""
        loaded = self._bases.get((Path(base).resolve(), profile_name))
        return loaded.adapters if loaded is not None else None

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()
            self._personal.clear()
            self._parts.clear()


_process_cache = PipelineCache()


def get_pipeline(ref: ModelRef, profile_name: str = DEFAULT_PROFILE) -> LoadedPipeline:
    """The warm pipeline for `ref` in this process, loading it on first use."""
    return _process_cache.get(ref, profile_name)


def process_cache() -> PipelineCache:
    return _process_cache


def configure_process_cache(max_personal: int = DEFAULT_PERSONAL_CACHE_SIZE, compile_unet: bool = False,
                            backend: BackendSettings | None = None, adapter_cache_bytes: int | None = None) -> None:
    """Replace this process's cache with one set up from worker settings (at worker start)."""
    global _process_cache
    _process_cache = PipelineCache(max_personal=max_personal, compile_unet=compile_unet, backend=backend,
                                   adapter_cache_bytes=adapter_cache_bytes)
