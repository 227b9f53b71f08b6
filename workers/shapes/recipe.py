"""The base-model training recipe as one config dataclass (saved beside the weights)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from workers.shapes.architecture import Architecture, TextEncoderConfig, UnetConfig, VaeConfig


@dataclass
class Recipe:
    seed: int = 0
    dataset_size: int = 30_000
    vae_steps: int = 2_500
    vae_crop_steps: int = 2_000
    vae_batch: int = 32
    vae_lr: float = 5e-4
    decoder_steps: int = 800
    decoder_batch: int = 32
    decoder_lr: float = 2e-4
    decoder_edge_weight: float = 20.0
    detail_steps: int = 1_500
    detail_batch: int = 16
    detail_lr: float = 4e-4
    detail_anchor_weight: float = 10.0
    unet_steps: int = 3_000
    unet_batch: int = 64
    unet_lr: float = 8e-4
    caption_dropout: float = 0.1
    caption_probe_weight: float = 0.1
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    eval_prompts: int = 100
    model_name: str = "shapes-v1"
    arch: Architecture = field(default_factory=Architecture)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        data = dict(data)
        arch = data.pop("arch", {}) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown recipe keys: {sorted(unknown)}")
        architecture = Architecture(
            image_size=arch.get("image_size", 64),
            vae=VaeConfig(**_tuples(arch.get("vae", {}))),
            text_encoder=TextEncoderConfig(**arch.get("text_encoder", {})),
            unet=UnetConfig(**_tuples(arch.get("unet", {}))),
        )
        return cls(arch=architecture, **data)

    @classmethod
    def from_yaml(cls, path: Path) -> Recipe:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def _tuples(section: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


# a configuration that runs the whole recipe end to end in seconds (tests, smoke checks)
TINY = {
    "dataset_size": 256,
    "vae_steps": 6,
    "vae_crop_steps": 3,
    "vae_batch": 8,
    "decoder_steps": 4,
    "decoder_batch": 8,
    "detail_steps": 3,
    "detail_batch": 4,
    "unet_steps": 6,
    "unet_batch": 8,
    "checkpoint_every": 3,
    "eval_prompts": 4,
    "arch": {
        "vae": {"block_out_channels": [8, 16, 16], "norm_num_groups": 8},
        "text_encoder": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        "unet": {"block_out_channels": [16, 32, 32], "norm_num_groups": 8, "attention_heads": 2},
    },
}
