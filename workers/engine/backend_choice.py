"""Which backend runs a loaded pipeline: measured at load, never assumed.

For a profile that allows the compiled CPU backend (the fast profile on CPU), loading a base
model builds both and times one warm-up generation of the model's defaults on each,
interleaved, a few rounds; the faster one serves the profile and the worker log says which,
with both times. The result is kept beside the compiled blobs, keyed by the weights, the CPU,
the versions and the thread count, so a restarted worker reuses it (and says so) and, when
the compiled backend won, never reads the PyTorch modules. Everything else (the quality
profile, GPUs, OpenVINO not installed or failing to export a model) runs on PyTorch. Personal models run on their base's choice: a full
fine-tune's own parts are compiled beside the base's shared ones; a LoRA is an adapter on the
base's PyTorch modules (adapters.py), so its UNet runs on PyTorch while the base's compiled
text encoder and decoder still serve it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from app.catalog.model_card import model_defaults
from workers.engine.backends import Backend, TorchBackend
from workers.engine.families import torch_backend
from workers.engine.model_info import ModelInfo, PartSource, part_files
from workers.engine.profiles import Profile, apply_profile

logger = logging.getLogger(__name__)

BACKEND_MODES = ("auto", "torch", "openvino")
PART_OF_MODULE = {"text_encoder": "text", "unet": "unet"}


@dataclass(frozen=True)
class BackendSettings:
    mode: str = "auto"  # "auto": the warm-up A/B; "torch" or "openvino": forced (tests, operators)
    cache_dir: Path | None = None  # compiled blobs; None: <data dir>/cache/openvino
    precision: str | None = None  # OpenVINO "bf16" or "f32"; None: bf16 where the CPU has it natively
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.mode not in BACKEND_MODES:
            raise ValueError(f"backend: unknown mode {self.mode!r} (known: {', '.join(BACKEND_MODES)})")

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        from app.config import get_settings

        return get_settings().data_dir / "cache" / "openvino"


def load_fast_decoder(folder: Path, subfolder: str | None, profile: Profile):
    """The model card's distilled decoder (fp32, to be cast with the VAE), if the profile uses one."""
    if not (profile.fast_decoder and subfolder and (folder / subfolder / "config.json").exists()):
        return None
    from diffusers import AutoencoderTiny

    return AutoencoderTiny.from_pretrained(folder / subfolder, local_files_only=True, dtype=torch.float32).eval()


# The auto mode exports only UNets up to this size. Exporting and compiling the bundled model
# takes seconds; at SD 1.5 size (3.4 GB of fp32 UNet) it took 31 min and 13 GB of worker memory
# on a 2-core CPU before the first picture (bench/README.md, realsize): a cost no first request
# should wait for. Operators can still force it with IMAGEBOOTH_ENGINE_BACKEND=openvino.
AUTO_EXPORT_MAX_UNET_BYTES = 512 * 2**20


def unet_weight_bytes(info: ModelInfo) -> int:
    """The UNet's weights on disk (a single checkpoint counts whole: the UNet is most of it)."""
    if info.path.is_file():
        return info.path.stat().st_size
    return sum(path.stat().st_size for path in part_files(info.path / "unet") if path.suffix != ".json")


def _wants_compiled(profile: Profile, settings: BackendSettings, info: ModelInfo) -> bool:
    from workers.engine.openvino_backend import openvino_available

    if settings.mode == "torch" or not profile.compiled_candidate or info.is_sdxl:
        return False  # SDXL: exporting 2.6B parameters needs more memory than serving them
    if settings.mode == "auto" and (size := unet_weight_bytes(info)) > AUTO_EXPORT_MAX_UNET_BYTES:
        logger.info("openvino: not exporting a %.1f GB UNet at load (auto mode); it runs on PyTorch", size / 1e9)
        return False
    # the exported text encoder takes no attention mask; such models stay on PyTorch
    return openvino_available() and not info.uses_attention_mask


def _base_sources(info: ModelInfo, modules) -> dict[str, PartSource]:
    """Each part's files (its cache key) and, for an export, its fp32 module as read."""
    path = info.path
    decoder_name = model_defaults(path).fast_decoder if modules.profile.fast_decoder else None
    if path.is_file():  # a single checkpoint holds every part
        folders = {part: [path] for part in ("text", "unet", "decoder")}
    else:
        vae = path / decoder_name if decoder_name and (path / decoder_name / "config.json").exists() else path / "vae"
        folders = {"text": part_files(path / "text_encoder"), "unet": part_files(path / "unet"),
                   "decoder": part_files(vae)}

    def module(part: str):
        pipe, decoder = modules.fp32()
        return {"text": pipe.text_encoder, "unet": pipe.unet, "decoder": decoder or pipe.vae}[part]

    return {part: PartSource(files, functools.partial(module, part)) for part, files in folders.items()}


def _compiled_backend(info: ModelInfo, modules, settings: BackendSettings):
    from workers.engine.openvino_backend import OpenVinoBackend, compile_parts

    try:
        parts = compile_parts(info, _base_sources(info, modules), settings.resolved_cache_dir(), settings.precision)
    except Exception:  # an architecture the exporter cannot trace still runs on PyTorch
        logger.exception("openvino: could not export this model; it runs on PyTorch")
        return None
    return OpenVinoBackend(parts["text"], parts["unet"], parts["decoder"], info.decoder_config)


def prepare_base(info: ModelInfo, modules, profile: Profile, device: torch.device, settings: BackendSettings) -> Backend:
    """The backend for a base model (`modules`: its loading.TorchModules), picked by measurement.

    Order matters: the compiled backend is exported from the fp32 weights, so it is built
    before the PyTorch side applies the profile (casting the modules in place). When the
    compile cache has every part and the A/B's result, the PyTorch side is never read.
    """
    compiled = _compiled_backend(info, modules, settings) if _wants_compiled(profile, settings, info) else None
    if compiled is None:
        return modules.backend()
    if settings.mode == "openvino":
        return compiled
    return _chosen(info, modules, profile, compiled, settings)


def _choice_file(profile: Profile, compiled, settings: BackendSettings) -> Path:
    """Where the A/B result for these weights, this CPU and these versions is remembered."""
    import openvino

    from workers.engine.openvino_backend import cpu_name

    parts = (compiled.text.weights, compiled.unet.weights, compiled.decoder.weights, compiled.name, profile,
             torch.__version__, openvino.__version__, cpu_name(), torch.get_num_threads())
    key = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return settings.resolved_cache_dir() / f"choice-{key}.json"


def _chosen(info: ModelInfo, modules, profile: Profile, compiled, settings: BackendSettings) -> Backend:
    """The A/B's winner: measured now, or read back from the compile cache where an earlier
    load measured the same weights on this CPU with the same versions and threads. A restart
    then skips PyTorch's first-call kernel setup (3 s of a 4.3 s A/B, measured) and reading
    the PyTorch modules at all, which is what keeps a warm worker start within 5 s."""
    path = _choice_file(profile, compiled, settings)
    remembered = json.loads(path.read_text()) if path.exists() else {}
    # the compiled backend's name is known without reading the PyTorch modules
    found = compiled if remembered.get("backend") == compiled.name else None
    if remembered and found is None and remembered.get("backend") == modules.backend().name:
        found = modules.backend()
    if found is not None:
        logger.info("profile %s runs on %s (warm-up A/B at batch 1 on this CPU, %s: %s; from %s)", profile.name,
                    found.name, remembered["measured_at"], remembered["summary"], path.name)
        return found
    best, summary = _faster(info, modules, profile, [modules.backend(), compiled], settings.rounds)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"backend": best.name, "summary": summary,
                                   "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}))
    os.replace(partial, path)
    return best


def _faster(info: ModelInfo, modules, profile: Profile, candidates: list, rounds: int) -> tuple:
    """The candidate with the lowest median time for one default generation at batch 1."""
    from workers.engine.sampling import run_backend_once

    for backend in candidates:  # first runs allocate and compile; not timed
        run_backend_once(info, modules, profile, backend)
    times: dict[str, list[float]] = {backend.name: [] for backend in candidates}
    for _ in range(rounds):
        for backend in candidates:  # interleaved, so load from elsewhere hits both alike
            started = time.perf_counter()
            run_backend_once(info, modules, profile, backend)
            times[backend.name].append(time.perf_counter() - started)
    best = min(candidates, key=lambda backend: statistics.median(times[backend.name]))
    summary = ", ".join(f"{name} {statistics.median(t) * 1e3:.1f} ms" for name, t in times.items())
    logger.info("profile %s runs on %s (warm-up A/B at batch 1: %s)", profile.name, best.name, summary)
    return best, summary


def prepare_personal(base_backend: Backend, base_torch: TorchBackend, info: ModelInfo, pipe, folder: Path,
                     profile: Profile, device: torch.device, owned: list[str],
                     settings: BackendSettings) -> tuple[Backend, TorchBackend]:
    """A full fine-tune's backend (its own parts compiled or cast, the base's shared) and its
    PyTorch backend."""
    from workers.engine.openvino_backend import OpenVinoBackend, compile_parts

    backend: Backend | None = None
    if isinstance(base_backend, OpenVinoBackend):
        sources = {PART_OF_MODULE[name]: PartSource(part_files(folder / name), functools.partial(getattr, pipe, name))
                   for name in owned}
        parts = compile_parts(info, sources, settings.resolved_cache_dir(), precision=base_backend.unet.precision)
        backend = base_backend.with_parts(**parts)
    apply_profile(pipe, profile, device, modules=owned)
    on_torch = torch_backend(pipe, profile, device, base_torch.decoder)
    return backend or on_torch, on_torch
