"""What a model path is: a diffusers folder or one `.safetensors` file, and of which family.

One reader for the web (pricing by native size, the start-up check) and the engine (which
pipeline to build, which config a single file needs). Pure Python: a safetensors file's
header is JSON, so its tensor names and shapes are read without torch (ARCHITECTURE.md rule 1).

Families: "sd" (Stable Diffusion 1.x / 2.x, `StableDiffusionPipeline`) and "sdxl"
(`StableDiffusionXLPipeline`). A single file in the AUTOMATIC1111 / ComfyUI layout is
recognised by its tensor names: SDXL carries OpenCLIP bigG as `conditioner.embedders.1`,
SD 2.x OpenCLIP ViT-H as `cond_stage_model.model`, SD 1.x OpenAI CLIP as
`cond_stage_model.transformer`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FAMILY_PIPELINES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}
SERVED = "Stable Diffusion 1.x/2.x and SDXL"
# The native side of each family's published checkpoints (a single file carries no config).
NATIVE_SIDE = {"sd1": 512, "sd2": 768, "sdxl": 1024}
_UNET_PREFIX = "model.diffusion_model."
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class ModelPathError(ValueError):
    """The configured model path cannot be served; the message names what is wrong."""


@dataclass(frozen=True)
class ModelKind:
    family: str  # "sd" or "sdxl"
    single_file: bool
    variant: str | None = None  # a single file's "sd1", "sd2" or "sdxl"


def tensor_shapes(file: Path) -> dict[str, list[int]]:
    """Every tensor's name and shape, from the file's header (a few MB even for SDXL)."""
    try:
        with open(file, "rb") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))
            if not 0 < length <= _MAX_HEADER_BYTES:
                raise ValueError("header length")
            header = json.loads(stream.read(length))
    except (OSError, struct.error, ValueError) as problem:
        raise ModelPathError(f"model: {file} is not a readable .safetensors file ({problem})") from None
    return {name: entry["shape"] for name, entry in header.items() if name != "__metadata__"}


def single_file_variant(shapes: dict[str, list[int]], file: Path) -> str:
    """"sd1", "sd2" or "sdxl" from a single file's tensor names, else a clear error."""
    if not any(name.startswith(_UNET_PREFIX) for name in shapes):
        raise ModelPathError(
            f"model: {file} is not a Stable Diffusion checkpoint (no {_UNET_PREFIX}* UNet weights; "
            f"served: {SERVED} in the AUTOMATIC1111/ComfyUI single-file layout or as a diffusers folder)")
    if any(name.startswith("conditioner.embedders.1.model.") for name in shapes):
        return "sdxl"
    if any(name.startswith("cond_stage_model.model.") for name in shapes):
        return "sd2"
    if any(name.startswith("cond_stage_model.transformer.") for name in shapes):
        return "sd1"
    raise ModelPathError(
        f"model: the architecture of {file} is not recognised (its text encoder is neither SD 1.x's "
        f"cond_stage_model.transformer, SD 2.x's cond_stage_model.model nor SDXL's conditioner.embedders; "
        f"served: {SERVED})")


def cross_attention_width(shapes: dict[str, list[int]]) -> int | None:
    """The width of the text the UNet attends to (768 SD 1.x, 1024 SD 2.x, 2048 SDXL)."""
    for name, shape in shapes.items():
        if name.startswith(_UNET_PREFIX) and name.endswith("attn2.to_k.weight"):
            return int(shape[-1])
    return None


def _folder_family(folder: Path) -> str:
    index = folder / "model_index.json"
    if not index.exists():
        raise ModelPathError(f"model: {folder} is not a model folder (no model_index.json) and not a .safetensors file")
    try:
        class_name = json.loads(index.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        raise ModelPathError(f"model: {index} is not readable JSON") from None
    for family, pipeline in FAMILY_PIPELINES.items():
        if class_name == pipeline:
            return family
    raise ModelPathError(f"model: {folder} is a {class_name or 'pipeline of unnamed class'}, a family "
                         f"ImageBooth does not serve (served: {SERVED})")


def model_kind(path: Path | str) -> ModelKind:
    """The family of a model path, or ModelPathError naming why it cannot be served."""
    path = Path(path)
    return _model_kind(path.resolve(), _stamp(path))


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=32)
def _model_kind(path: Path, _mtime: float) -> ModelKind:
    if path.is_dir():
        return ModelKind(_folder_family(path), single_file=False)
    if not path.exists():
        raise ModelPathError(f"model: {path} does not exist")
    if path.suffix != ".safetensors":
        raise ModelPathError(f"model: {path} is neither a diffusers folder nor a .safetensors file "
                             "(.ckpt pickles are not loaded: they can run code)")
    variant = single_file_variant(tensor_shapes(path), path)
    return ModelKind("sdxl" if variant == "sdxl" else "sd", single_file=True, variant=variant)


def card_path(model_path: Path, card_name: str) -> Path:
    """Where a model's card is: in its folder, or beside a single file (`NAME.<card_name>`)."""
    return model_path.with_name(f"{model_path.stem}.{card_name}") if model_path.suffix == ".safetensors" \
        else model_path / card_name


_VARIANT_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}
# what a config folder must hold; "a|b+c" is a, or b and c (a tokenizer saved either way)
_TOKENIZER = "tokenizer.json|vocab.json+merges.txt"
_CONFIG_FILES: dict[str, tuple[str, ...]] = {
    "sd": ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "vae/config.json",
           "text_encoder/config.json", f"tokenizer/{_TOKENIZER}"),
}
_CONFIG_FILES["sdxl"] = (*_CONFIG_FILES["sd"], "text_encoder_2/config.json", f"tokenizer_2/{_TOKENIZER}")


def _present(folder: Path, needed: str) -> bool:
    part, _, files = needed.rpartition("/")
    return any(all((folder / part / name).exists() for name in choice.split("+")) for choice in files.split("|"))


def single_file_config(file: Path, configured: Path | None) -> Path:
    """The local config folder a single file is loaded against, checked against the file.

    A single file holds weights only; the configs and tokenizers of its family come from a
    diffusers folder here (`IMAGEBOOTH_MODEL_CONFIG_PATH`, else the file's own folder when it
    is one), never from a hub. Whatever is missing or does not fit is named.
    """
    kind = model_kind(file)
    assert kind.variant is not None
    label = _VARIANT_NAMES[kind.variant]
    folder = configured or (file.parent if (file.parent / "model_index.json").exists() else None)
    needed = _CONFIG_FILES[kind.family]
    if folder is None:
        raise ModelPathError(
            f"model: {file} is a single-file {label} checkpoint and needs its family's configs locally (they are "
            f"never fetched): set IMAGEBOOTH_MODEL_CONFIG_PATH to a diffusers {label} folder ({', '.join(needed)}; "
            "weights not needed), or put the file in such a folder")
    if (folder / "model_index.json").exists() and _folder_family(folder) != kind.family:
        raise ModelPathError(f"model: {file} is a {label} checkpoint but the config folder {folder} is not ({SERVED})")
    missing = [name.replace("|", " or ").replace("+", " and ") for name in needed if not _present(folder, name)]
    if missing:
        raise ModelPathError(f"model: the config folder {folder} for the {label} checkpoint {file} lacks "
                             f"{', '.join(missing)}")
    width = cross_attention_width(tensor_shapes(file))
    configured_width = json.loads((folder / "unet" / "config.json").read_text()).get("cross_attention_dim")
    if width != configured_width:
        raise ModelPathError(f"model: {file} is a {label} checkpoint whose UNet reads text {width} wide; the config "
                             f"folder {folder} describes one {configured_width} wide (another model's configs)")
    return folder


def parameter_count(path: Path | str) -> int:
    """The model's parameters (every part's weights), from the safetensors headers alone."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("*/*.safetensors"))
    return sum(math.prod(shape) for file in files for shape in tensor_shapes(file).values())


def check_model_path(path: Path, config_path: Path | None = None) -> ModelKind:
    """Everything knowable without loading weights: the family, and a single file's configs."""
    kind = model_kind(path)
    if kind.single_file:
        single_file_config(Path(path), config_path)
    return kind


class IncompatibleModel(ValueError):
    """A personal model (or LoRA) made for another base; the message is for the job's owner."""
