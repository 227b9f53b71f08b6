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
from dataclasses import dataclass

import torch

from app.generation.limits import PROFILE_NAMES, QUALITY_DEFAULT_STEPS

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
    unet_dtype: torch.dtype = torch.float32
    vae_dtype: torch.dtype = torch.float32
    text_encoder_dtype: torch.dtype = torch.float32
    autocast_dtype: torch.dtype | None = None
    int8_linear: bool = False  # dynamic int8 quantization of the UNet's nn.Linear layers
    channels_last: bool = False
    compile_unet: bool = False
    # Whether the compiled CPU backend (openvino_backend) is a candidate: the choice between
    # it and PyTorch is made by a warm-up A/B at load (backend_choice), not here.
    compiled_candidate: bool = False
    # Whether a cheaper decoder distilled from the model's VAE (its card's fast_decoder) is used.
    fast_decoder: bool = False


# UniPC at the model's default step count (8 unless its card says otherwise) for "fast";
# DPM++ 2M (A1111's usual choice) at 25 steps, all fp32, for "quality". See MEASUREMENTS.
_FAST = Profile(name="fast", sampler="UniPC", steps=None)
_QUALITY = Profile(name="quality", sampler="DPM++ 2M", steps=QUALITY_DEFAULT_STEPS)


def resolve_profile(name: str, device: torch.device, compile_unet: bool = False) -> Profile:
    """The named profile with the speed settings that pay on `device`.

    `compile_unet` is a worker setting, not a profile default: it never paid on CPU (see
    MEASUREMENTS) and costs a long warm-up, so a deployment opts in where it measured a gain.
    """
    if name not in PROFILE_NAMES:
        raise ValueError(f"profile: unknown profile {name!r} (known: {', '.join(PROFILE_NAMES)})")
    if name == "quality":
        # Full precision everywhere: the reference the fast path is checked against.
        return _QUALITY
    if device.type == "cuda":
        settings = _cuda_fast_settings()
    else:
        settings = dict(_cpu_fast_settings(), compiled_candidate=True)
    return dataclasses.replace(_FAST, compile_unet=compile_unet, fast_decoder=True, **settings)


def _cuda_fast_settings() -> dict:
    # Half-precision weights use tensor cores and halve memory traffic (the standard SD
    # practice; NOT measured here: this project's machine has no GPU yet, bench/ will).
    # bf16 where supported; fp16-only cards keep the VAE in fp32, as the SD VAE overflows in
    # fp16 (black images). channels_last is left off until a GPU measurement shows it pays.
    if torch.cuda.is_bf16_supported():
        return dict(unet_dtype=torch.bfloat16, vae_dtype=torch.bfloat16, text_encoder_dtype=torch.bfloat16)
    return dict(unet_dtype=torch.float16, text_encoder_dtype=torch.float16)


def _cpu_fast_settings() -> dict:
    # bf16 weights for the UNet and VAE paid 1.5x (n=1) to 1.8x (n=8) on this machine's
    # AVX512-BF16 CPU, for a mean pixel change of 0.5/255 (max 5/255). Without native bf16
    # instructions, bf16 is emulated and slower, so such CPUs stay in fp32. The text encoder
    # runs once per request: bf16 there buys nothing and perturbs the conditioning.
    if cpu_has_native_bf16():
        return dict(unet_dtype=torch.bfloat16, vae_dtype=torch.bfloat16)
    return {}


def cpu_has_native_bf16() -> bool:
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


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
    parts = ("unet", "vae", "text_encoder", "text_encoder_2")
    names = modules if modules is not None else [name for name in parts if getattr(pipe, name, None) is not None]
    for module_name in names:
        module = getattr(pipe, module_name)
        module.to(device=device)
        # SDXL's second text encoder is held like the first
        dtype = getattr(profile, f"{module_name.removesuffix('_2')}_dtype")
        if module.dtype != dtype:
            module.to(dtype=dtype)
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


# MEASUREMENTS (2026-11-29, this project's machine: 2-core AMD EPYC with AVX512-BF16, no GPU,
# torch 2.13 CPU, diffusers 0.42; shared with a training job, so every comparison ran
# interleaved A/B in one process with 1 torch thread, median of 3, same seeds).
# Model: random weights at the bundled model's size (workers/shapes/architecture.py: UNet
# 64/128/192, 4x VAE, 64x64 px) with its scheduler (v_prediction, squaredcos_cap_v2,
# trailing). "diff" = |pixel difference| to the fp32 run of the same sampler, in /255.
# Ratios are speed-ups over fp32 at the same sampler and steps (8, guidance 7.5).
#
#   setting                      n=1     n=8     diff mean/max   kept
#   bf16 weights UNet+VAE        1.48x   1.76x   0.5 / 5         yes
#   bf16 weights UNet only       1.16x   1.56x   0.4 / 6         (VAE too pays more)
#   bf16 weights UNet+VAE+text   1.13x   1.76x   0.5 / 5         no: text encoder runs once
#   bf16 autocast (fp32 weights) 0.86x   0.78x   0.5 / 5         no: slower, casts every op
#   int8 dynamic Linear (ao)     1.04x   1.25x   0.4 / 6         no: bf16 pays more, and
#                                                                quantize_dynamic needs fp32
#   channels_last                1.04x   1.00x   0.0 / 1         no
#   bf16 UNet + channels_last    1.07x   1.26x   0.4 / 4         no: less than bf16 alone
#   torch.compile (inductor)     0.99x   -       0.0 / 0         no: 95 s warm-up, no gain
#   On the tiny test model everything is overhead: bf16 0.86x, int8 0.87x, channels_last
#   1.17x (n=1) / 0.91x (n=8) - too small to decide anything; numbers above decided.
#
# Resolved fast profile (UniPC, 8 steps, bf16 UNet+VAE) per image, same model, 1 thread:
#   n=1: 239 ms vs 338 ms fp32 same sampler (1.42x) vs 1987 ms PLMS 50 steps fp32 (8.3x)
#   n=8:  99 ms vs 181 ms (1.83x) vs 957 ms (9.7x); fast vs fp32 diff 0.9 / 12
#   batch 8 costs 0.41x per image of batch 1.
#
# Sampler (solver error proxy: mean |diff| /255 to a 100-step DPM++ 2M run, 4 seeds; on
# random weights, so it ranks solvers, not prompt fidelity - the fidelity eval on the
# trained model is the judge):
#                          bundled schedule (v, cosine)   SD schedule (eps, scaled_linear)
#   steps                  6      8      12               6      8      12
#   UniPC                  2.46   2.23   1.51             2.50   1.45   1.18   <- fast
#   DPM++ 2M               3.69   2.73   1.71             2.70   1.69   1.32   <- quality, 25
#   Euler                  6.04   4.71   3.15             4.35   2.97   2.36
#   DPM++ 2M Karras        crash (repeated timesteps)     3.53   3.26   3.01
# Same cost per step (one UNet call each), so UniPC's lower error is free; UniPC at 6 steps
# is as close as DPM++ 2M at 8, a further 1.33x if the fidelity eval agrees (the step count
# is the model card's, see model_defaults).
