"""A LoRA in the kohya/A1111 layout: what AUTOMATIC1111, ComfyUI and Forge load.

Keys are the diffusers module paths with dots made underscores under a `lora_unet_` /
`lora_te_` prefix, `lora_down` / `lora_up` for peft's `lora_A` / `lora_B`, and one `.alpha`
per module (diffusers' `convert_state_dict_to_kohya` does the renaming). Two things it leaves
to us: a single text encoder is `lora_te_` in SD 1.x files (diffusers writes SDXL's `lora_te1_`),
and the text encoder's paths start at `text_model.` as in the original CLIPTextModel, which
transformers 5 no longer nests its layers under.
"""
from __future__ import annotations

from pathlib import Path

import torch

from app.catalog.model_card import KOHYA_FILE as KOHYA_WEIGHTS_NAME  # what the download route sends


def kohya_state_dict(unet_layers: dict[str, torch.Tensor],
                     text_layers: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """peft-format LoRA state dicts (get_peft_model_state_dict) to one kohya state dict."""
    from diffusers.utils import convert_state_dict_to_kohya

    combined = {f"unet.{key}": value for key, value in unet_layers.items()}
    for key, value in (text_layers or {}).items():
        path = key if key.startswith("text_model.") else f"text_model.{key}"
        combined[f"text_encoder.{path}"] = value
    # alpha = rank (the trainer's lora_alpha), so A1111's scale alpha / rank is 1, as in training
    converted = convert_state_dict_to_kohya(combined)
    return {key.replace("lora_te1_", "lora_te_", 1): value.contiguous() for key, value in converted.items()}


def write_kohya(folder: Path, unet_layers: dict[str, torch.Tensor], text_layers: dict[str, torch.Tensor] | None,
                rank: int) -> Path:
    from safetensors.torch import save_file

    path = Path(folder) / KOHYA_WEIGHTS_NAME
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(rank),
                "ss_base_model_version": "sd_v1"}
    save_file(kohya_state_dict(unet_layers, text_layers), str(path), metadata=metadata)
    return path
