"""What the sampling loop and the compiled backend need of a model besides its weights.

Shapes, the tokenizer(s), the scheduler's config and the decoder's latent scaling: all of it
is in a diffusers folder's JSON files and tokenizer, so a worker whose networks come from the
compile cache reads these and never builds the PyTorch pipeline (nor imports diffusers'
model code, peft or transformers' modelling code, which were most of a warm start: bench
part (s)). A single-file checkpoint has its configs only once diffusers has read it, so its
info comes from the pipeline (`of_pipeline`); a test keeps the two readings equal.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    path: Path  # the model folder or file (its card sits beside it)
    tokenizer: Any
    tokenizer_2: Any | None  # SDXL's second tokenizer
    scheduler_config: Any  # the model's own scheduler's full config (defaults filled in)
    unet_config: dict
    text_config: dict
    decoder_config: dict  # the VAE's, or the fast decoder's where the profile uses it
    vae_scale_factor: int
    force_zeros_for_empty_prompt: bool

    @property
    def is_sdxl(self) -> bool:
        return self.tokenizer_2 is not None

    @property
    def uses_attention_mask(self) -> bool:
        # SD 1.x text encoders were trained without an attention mask; follow the config
        return bool(self.text_config.get("use_attention_mask", False))

    @classmethod
    def of_folder(cls, folder: Path, decoder_folder: Path | None = None) -> ModelInfo:
        """Read from a diffusers folder's files, as the pipeline would read them."""
        index = json.loads((folder / "model_index.json").read_text())
        vae = _config(folder / "vae")
        return cls(
            path=folder,
            tokenizer=_tokenizer(folder, index, "tokenizer"),
            tokenizer_2=_tokenizer(folder, index, "tokenizer_2") if index.get("tokenizer_2", [None])[0] else None,
            scheduler_config=_scheduler_config(folder, index),
            unet_config=_config(folder / "unet"),
            text_config=_config(folder / "text_encoder"),
            decoder_config=_decoder_config(_config(decoder_folder) if decoder_folder is not None else vae),
            # StableDiffusion(XL)Pipeline's own rule
            vae_scale_factor=2 ** (len(vae.get("block_out_channels", [0])) - 1),
            force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", False)),
        )

    @classmethod
    def of_pipeline(cls, pipe, decoder=None) -> ModelInfo:
        return cls(
            path=Path(pipe.name_or_path),
            tokenizer=pipe.tokenizer,
            tokenizer_2=getattr(pipe, "tokenizer_2", None),
            scheduler_config=pipe.scheduler.config,
            unet_config=dict(pipe.unet.config),
            text_config=pipe.text_encoder.config.to_dict(),
            decoder_config=_decoder_config(dict((decoder if decoder is not None else pipe.vae).config)),
            vae_scale_factor=pipe.vae_scale_factor,
            force_zeros_for_empty_prompt=bool(pipe.config.get("force_zeros_for_empty_prompt", False)),
        )


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _decoder_config(config: dict) -> dict:
    # the defaults are AutoencoderKL's, for configs written before diffusers saved them
    return {"scaling_factor": config.get("scaling_factor", 0.18215), "shift_factor": config.get("shift_factor"),
            "latent_channels": config.get("latent_channels", 4)}


def _tokenizer(folder: Path, index: dict, name: str):
    import transformers

    _library, class_name = index[name]
    return getattr(transformers, class_name).from_pretrained(folder / name, local_files_only=True)


def _scheduler_config(folder: Path, index: dict):
    """The scheduler's config as the pipeline's scheduler holds it: the file over its class's
    defaults (samplers built from it take their settings from these)."""
    import diffusers

    scheduler_class = getattr(diffusers, index["scheduler"][1])
    return scheduler_class.from_pretrained(folder / "scheduler", local_files_only=True).config


@dataclass(frozen=True)
class PartSource:
    """A network to compile: the files its weights and config come from (the cache key) and
    the fp32 module, asked for only when the compile cache has no export of those files."""

    files: list[Path]
    module: Callable[[], Any]


def files_key(paths: list[Path]) -> str:
    """A part's key in the compile cache: sha256 over its files' names and bytes, known
    without reading the weights into PyTorch."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = path.stat()
        digest.update(f"|{path.name}|{_file_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)}".encode())
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=256)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """Once per file version and process (a single checkpoint serves every part)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def part_files(folder: Path) -> list[Path]:
    """The files a diffusers part folder (unet/, vae/, text_encoder/) loads from."""
    return [path for path in folder.iterdir() if path.is_file() and path.suffix in (".json", ".safetensors", ".bin")]
