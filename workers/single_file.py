"""A diffusers SD 1.x or SDXL folder written as one AUTOMATIC1111 / ComfyUI `.safetensors` file.

What people download from model sites is one file in the original (LDM) layout, not a
diffusers folder. Tests and benches make such files from the random-weight folders
(workers/random_models.py) with this converter, the inverse of diffusers' single-file
conversion (`diffusers.loaders.single_file_utils`): the round trip is checked weight for
weight in tests/workers/engine/test_single_file.py.

    python -m workers.single_file FOLDER OUT.safetensors [--configs]   # configs: beside OUT
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

UNET, VAE = "model.diffusion_model.", "first_stage_model."
SD_TEXT = "cond_stage_model.transformer."
SDXL_TEXT, SDXL_TEXT_2 = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}


def _unet_blocks(config: dict) -> dict[str, str]:
    """diffusers block prefix -> LDM block prefix: LDM numbers every resnet, attention and
    resampler of a level in one flat list (layers_per_block + 1 entries a level)."""
    per_level, levels = config["layers_per_block"] + 1, len(config["block_out_channels"])
    blocks = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
              "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
              "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
              "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
              "mid_block.resnets.1.": "middle_block.2."}
    for level in range(levels):
        for layer in range(per_level - 1):
            blocks[f"down_blocks.{level}.resnets.{layer}."] = f"input_blocks.{per_level * level + layer + 1}.0."
            blocks[f"down_blocks.{level}.attentions.{layer}."] = f"input_blocks.{per_level * level + layer + 1}.1."
        for layer in range(per_level):
            blocks[f"up_blocks.{level}.resnets.{layer}."] = f"output_blocks.{per_level * level + layer}.0."
            blocks[f"up_blocks.{level}.attentions.{layer}."] = f"output_blocks.{per_level * level + layer}.1."
        if level < levels - 1:
            blocks[f"down_blocks.{level}.downsamplers.0.conv."] = f"input_blocks.{per_level * (level + 1)}.0.op."
            after = 2 if "CrossAttn" in config["up_block_types"][level] else 1
            blocks[f"up_blocks.{level}.upsamplers.0."] = f"output_blocks.{per_level * level + per_level - 1}.{after}."
    return blocks


def _renamed(key: str, blocks: dict[str, str], inner: dict[str, str]) -> str:
    prefix = max((p for p in blocks if key.startswith(p)), key=len, default=None)
    if prefix is None:
        raise KeyError(f"single file: no LDM name for {key}")
    rest = key[len(prefix):]
    head, _, tail = rest.partition(".")
    if "resnets." in prefix:
        head = inner.get(head, head)
    return blocks[prefix] + (f"{head}.{tail}" if tail else head)


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    blocks = _unet_blocks(config)
    return {UNET + _renamed(key, blocks, _RESNET): value for key, value in state.items()}


def _vae_blocks(config: dict) -> dict[str, str]:
    levels = len(config["block_out_channels"])
    blocks = {f"{part}.{name}.": f"{part}.{name}." for part in ("encoder", "decoder")
              for name in ("conv_in", "conv_out")}
    blocks.update({"quant_conv.": "quant_conv.", "post_quant_conv.": "post_quant_conv."})
    for part in ("encoder", "decoder"):
        blocks[f"{part}.conv_norm_out."] = f"{part}.norm_out."
        blocks[f"{part}.mid_block.attentions.0."] = f"{part}.mid.attn_1."
        for index in range(2):
            blocks[f"{part}.mid_block.resnets.{index}."] = f"{part}.mid.block_{index + 1}."
    for level in range(levels):
        blocks[f"encoder.down_blocks.{level}.resnets."] = f"encoder.down.{level}.block."
        blocks[f"encoder.down_blocks.{level}.downsamplers.0."] = f"encoder.down.{level}.downsample."
        # the decoder's levels are numbered from the bottom in LDM, from the top in diffusers
        blocks[f"decoder.up_blocks.{level}.resnets."] = f"decoder.up.{levels - 1 - level}.block."
        blocks[f"decoder.up_blocks.{level}.upsamplers.0."] = f"decoder.up.{levels - 1 - level}.upsample."
    return blocks


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    blocks, out = _vae_blocks(config), {}
    for key, value in state.items():
        name = _renamed(key, blocks, {})
        if ".mid.attn_1." in name:
            head, _, leaf = name.rpartition(".")
            attention_part = head.split(".mid.attn_1.", 1)[1]
            name = f"{head.split('.mid.attn_1.', 1)[0]}.mid.attn_1.{_VAE_ATTENTION[attention_part]}.{leaf}"
            value = value[:, :, None, None] if value.ndim == 2 else value  # LDM's are 1x1 convolutions
        out[VAE + name.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP keeps transformers' names; newer transformers drop the `text_model.` level."""
    return {prefix + (key if key.startswith(("text_model.", "text_projection")) else f"text_model.{key}"): value
            for key, value in state.items()}


def open_clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """SDXL's second encoder in OpenCLIP's names: q, k, v fused into one in-projection."""
    out = {"token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
           "ln_final.weight": state["text_model.final_layer_norm.weight"],
           "ln_final.bias": state["text_model.final_layer_norm.bias"],
           "text_projection": state["text_projection.weight"].T.contiguous()}
    layer_prefix = "text_model.encoder.layers."
    layers = {int(key[len(layer_prefix):].split(".")[0]) for key in state if key.startswith(layer_prefix)}
    for index in sorted(layers):
        source, target = f"{layer_prefix}{index}.", f"transformer.resblocks.{index}."
        for leaf in ("weight", "bias"):
            out[f"{target}attn.in_proj_{leaf}"] = torch.cat(
                [state[f"{source}self_attn.{q}_proj.{leaf}"] for q in ("q", "k", "v")])
            for diffusers_name, ldm_name in _OPEN_CLIP_LAYER.items():
                out[f"{target}{ldm_name}.{leaf}"] = state[f"{source}{diffusers_name}.{leaf}"]
    return {prefix + key: value for key, value in out.items()}


def _part(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for file in sorted((folder / name).glob("*.safetensors")):
        state.update(load_file(file))
    return state, json.loads((folder / name / "config.json").read_text())


def folder_to_single_file(folder: Path | str, out: Path | str) -> Path:
    """Write `folder` (an SD 1.x or SDXL diffusers folder) as one LDM-layout safetensors file."""
    from safetensors.torch import save_file

    folder, out = Path(folder), Path(out)
    sdxl = json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    unet, unet_config = _part(folder, "unet")
    weights = unet_to_ldm(unet, unet_config)
    del unet
    weights.update(vae_to_ldm(*_part(folder, "vae")))
    weights.update(clip_to_ldm(_part(folder, "text_encoder")[0], SDXL_TEXT if sdxl else SD_TEXT))
    if sdxl:
        weights.update(open_clip_to_ldm(_part(folder, "text_encoder_2")[0], SDXL_TEXT_2))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in weights.items()}, str(out))
    return out


def copy_configs(folder: Path | str, out: Path | str) -> Path:
    """The folder's configs and tokenizers without its weights: what a single file is loaded against."""
    folder, out = Path(folder), Path(out)
    for file in folder.rglob("*"):
        if file.is_file() and file.suffix in (".json", ".txt"):
            (out / file.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, out / file.relative_to(folder))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.single_file", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--configs", action="store_true", help="also copy the folder's configs beside OUT")
    args = parser.parse_args(argv)
    print(folder_to_single_file(args.folder, args.out))
    if args.configs:
        print(copy_configs(args.folder, args.out.parent))


if __name__ == "__main__":
    main()
