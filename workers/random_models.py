"""Random-weight Stable Diffusion folders at the published architectures, built offline.

No pretrained weights reach this project's machines, yet loading, shapes, memory, speed and
the artifacts a job writes must be proven at the size people really run (SD 1.5: 1.07B
parameters at 512 px; SDXL: 3.5B at 1024 px, two text encoders). This writes diffusers
folders with exactly those architectures and random weights (they draw noise, not pictures),
plus tiny versions of each family for fast tests. Nothing built here is committed: tests and
benches build into a cache dir on first use (`cached_model`), in seconds to a minute.

    python -m workers.random_models {tiny-sd,tiny-sdxl,sd15,sd2v,sdxl} OUT_DIR
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from workers.engine.tiny_model import write_clip_tokenizer

BUILD_VERSION = "2"  # bump when an architecture below changes: cached folders are rebuilt
_COMPLETE = ".complete"

# Stable Diffusion's training noise schedule, shared by SD 1.x, 2.x and SDXL.
_SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}


@dataclass(frozen=True)
class Architecture:
    """One family member's shapes: UNet, VAE, text encoder(s) and the scheduler it ships."""

    family: str  # "sd" (1.x / 2.x) or "sdxl"
    unet: dict[str, Any]
    vae: dict[str, Any]
    # CLIPTextConfig arguments; SDXL's second one is a CLIPTextModelWithProjection
    text_encoders: tuple[dict[str, Any], ...]
    scheduler: str
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    weights_dtype: torch.dtype = torch.float32
    max_tokens: int = 77


def _clip(width: int, layers: int, heads: int, act: str, projection: int, positions: int = 77) -> dict[str, Any]:
    # The tokenizer written here knows ~540 symbols, but the embedding table keeps CLIP's
    # 49408 rows so that parameter counts, memory and file sizes are the published ones.
    return dict(vocab_size=49408, hidden_size=width, intermediate_size=width * 4, num_hidden_layers=layers,
                num_attention_heads=heads, hidden_act=act, projection_dim=projection,
                max_position_embeddings=positions, bos_token_id=0, eos_token_id=1, pad_token_id=1)


def _vae(levels: tuple[int, ...], size: int, scaling: float, groups: int = 32, layers: int = 2) -> dict[str, Any]:
    return dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=levels,
                down_block_types=("DownEncoderBlock2D",) * len(levels),
                up_block_types=("UpDecoderBlock2D",) * len(levels),
                layers_per_block=layers, norm_num_groups=groups, sample_size=size, scaling_factor=scaling)


_CLIP_L = _clip(768, 12, 12, "quick_gelu", 768)  # OpenAI CLIP ViT-L/14: SD 1.x, SDXL's first
_SD_VAE = _vae((128, 256, 512, 512), 512, 0.18215)

SD15 = Architecture(
    family="sd",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
              down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
              up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
              cross_attention_dim=768, attention_head_dim=8),
    vae=_SD_VAE,
    text_encoders=(_CLIP_L,),
    scheduler="PNDMScheduler",
    scheduler_config=dict(_SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False),
)

SD2V = Architecture(  # SD 2.1 (768 px, v-prediction, OpenCLIP ViT-H penultimate layer)
    family="sd",
    unet=dict(SD15.unet, sample_size=96, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
              use_linear_projection=True, upcast_attention=True),
    vae=dict(_SD_VAE, sample_size=768),
    text_encoders=(_clip(1024, 23, 16, "gelu", 512),),
    scheduler="DDIMScheduler",
    scheduler_config=dict(_SD_BETAS, prediction_type="v_prediction", set_alpha_to_one=False, clip_sample=False),
)

_SDXL_SCHEDULER = dict(_SD_BETAS, timestep_spacing="leading", interpolation_type="linear")

SDXL = Architecture(  # SDXL base 1.0
    family="sdxl",
    unet=dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
              transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
              cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
              addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816),
    vae=dict(_SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
    text_encoders=(_CLIP_L, _clip(1280, 32, 20, "gelu", 1280)),  # + OpenCLIP ViT-bigG/14
    scheduler="EulerDiscreteScheduler",
    scheduler_config=_SDXL_SCHEDULER,
    # 3.5B parameters are 14 GB in fp32; bf16 halves that (half the machine's memory).
    weights_dtype=torch.bfloat16,
)

_TINY_UNET = dict(sample_size=16, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                  attention_head_dim=4)
_TINY_VAE = _vae((8, 16), 32, 0.18215, groups=4, layers=1)

TINY_SD = Architecture(
    family="sd",
    unet=dict(_TINY_UNET, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32),
    vae=_TINY_VAE,
    text_encoders=(dict(_clip(32, 2, 4, "quick_gelu", 32, positions=16), vocab_size=1024),),
    scheduler="PNDMScheduler",
    scheduler_config=dict(_SD_BETAS, skip_prk_steps=True),
    max_tokens=16,
)

TINY_SDXL = Architecture(
    family="sdxl",
    unet=dict(_TINY_UNET, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32 + 48,
              use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
              projection_class_embeddings_input_dim=48 + 6 * 8),
    vae=_TINY_VAE,
    # Single-file loaders recognise SDXL by its second encoder's 10th block, and tell the two
    # encoders apart by width: so 10 layers, and another width than the first's.
    text_encoders=(dict(_clip(32, 2, 4, "quick_gelu", 32, positions=16), vocab_size=1024),
                   dict(_clip(48, 10, 4, "gelu", 48, positions=16), vocab_size=1024)),
    scheduler="EulerDiscreteScheduler",
    scheduler_config=_SDXL_SCHEDULER,
    max_tokens=16,
)

ARCHITECTURES: dict[str, Architecture] = {
    "tiny-sd": TINY_SD, "tiny-sdxl": TINY_SDXL, "sd15": SD15, "sd2v": SD2V, "sdxl": SDXL,
}


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly in `dtype`: SDXL in fp32 first would need 14 GB."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _text_encoder(config: dict[str, Any], with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return model_class(CLIPTextConfig(**config))


def _components(arch: Architecture, folder: Path) -> dict[str, Any]:
    import diffusers
    from transformers import CLIPTokenizer

    write_clip_tokenizer(folder / "tokenizer", arch.max_tokens)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    parts: dict[str, Any] = {
        "unet": diffusers.UNet2DConditionModel(in_channels=4, out_channels=4, **arch.unet),
        "vae": diffusers.AutoencoderKL(**arch.vae),
        "text_encoder": _text_encoder(arch.text_encoders[0], with_projection=False),
        "tokenizer": tokenizer,
        "scheduler": getattr(diffusers, arch.scheduler)(**arch.scheduler_config),
    }
    if arch.family == "sdxl":
        parts.update(text_encoder_2=_text_encoder(arch.text_encoders[1], with_projection=True),
                     tokenizer_2=tokenizer)
    return parts


def build(name: str, folder: Path | str, seed: int = 0) -> Path:
    """Write the random-weight diffusers folder of architecture `name` to `folder`."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    arch = ARCHITECTURES[name]
    folder = Path(folder)
    torch.manual_seed(seed)
    with _default_dtype(arch.weights_dtype), torch.no_grad():
        parts = _components(arch, folder)
    if arch.family == "sdxl":
        pipe = StableDiffusionXLPipeline(**parts, add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "imagebooth-random-models"


def cached_model(name: str, cache_dir: Path | str | None = None) -> Path:
    """The folder of architecture `name` in `cache_dir`, built on first use.

    Several test processes (and helpers) may ask at once: a file lock lets one build while
    the others wait, and a marker written last means a half-built folder is never used.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"random model: unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"{name}-v{BUILD_VERSION}"
    if (folder / _COMPLETE).exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / _COMPLETE).exists():
            partial = root / f".{folder.name}.{os.getpid()}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            build(name, partial)
            (partial / _COMPLETE).write_text(f"built {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
    return folder


def parameter_counts(folder: Path | str) -> dict[str, int]:
    """Parameters per part of a built folder, read from its safetensors headers."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    for file in sorted(Path(folder).glob("*/*.safetensors")):
        with safe_open(str(file), framework="pt") as weights:
            total = sum(_numel(weights, key) for key in weights.keys())  # noqa: SIM118 - not iterable
        counts[file.parent.name] = counts.get(file.parent.name, 0) + total
    return counts


def _numel(weights, key: str) -> int:
    numel = 1
    for side in weights.get_slice(key).get_shape():
        numel *= side
    return numel


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.random_models", description=__doc__.splitlines()[0])
    parser.add_argument("architecture", choices=sorted(ARCHITECTURES))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    build(args.architecture, args.out_dir, args.seed)
    counts = parameter_counts(args.out_dir)
    parts = ", ".join(f"{part} {count / 1e6:.1f}M" for part, count in counts.items())
    print(f"{args.architecture}: {sum(counts.values()) / 1e6:.1f}M parameters ({parts}) "
          f"in {args.out_dir}, {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
