"""Writes models/<name>/README.md: data, architecture, parameter counts, recipe, times, eval."""
from __future__ import annotations

import json
from pathlib import Path

from workers.shapes.world import ATTRIBUTES


def _params(folder: Path, part: str) -> int:
    from safetensors import safe_open

    total = 0
    for file in (folder / part).glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                total += _numel(f.get_slice(key).get_shape())
    return total


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def write_model_card(folder: Path, evals: list[dict], vae_check: dict | None = None) -> Path:
    recipe = json.loads((folder / "recipe.json").read_text())
    times = json.loads((folder / "training_times.json").read_text())
    size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    arch = recipe["arch"]
    lines = [
        f"# {recipe['model_name']}: ImageBooth's bundled text-to-image model",
        "",
        "A small Stable-Diffusion-shaped model (AutoencoderKL + CLIPTextModel + UNet2DConditionModel,",
        "diffusers format, safetensors) trained from nothing by `imagebooth train-base` on pictures the",
        "project draws itself (the shapes world of `shared/SHAPES.md`). It loads offline with",
        "`StableDiffusionPipeline.from_pretrained(path)`.",
        "",
        "## Data",
        f"{recipe['dataset_size']:,} drawn 64x64 pictures (seed {recipe['seed']}): one flat shape (circle, square,",
        "triangle, star) in one of 8 colours on a flat background of another; small/medium/large; centre,",
        "left, right, top or bottom, with a few per cent of jitter. Captions are drawn anew each step in the",
        "SHAPES.md grammar with wrappers (\"a photo of ...\"), letter case and punctuation variants; 10% are",
        "empty (for classifier-free guidance). No size word means medium; no position means the centre.",
        "",
        "## Architecture",
        "| part | configuration | parameters |",
        "|---|---|---|",
        f"| VAE | 4x downsampling, channels {arch['vae']['block_out_channels']}, {arch['vae']['latent_channels']} latent channels | {_params(folder, 'vae'):,} |",
        f"| text encoder | CLIP, width {arch['text_encoder']['hidden_size']}, {arch['text_encoder']['num_hidden_layers']} layers, BPE tokenizer trained on the captions | {_params(folder, 'text_encoder'):,} |",
        f"| UNet | channels {arch['unet']['block_out_channels']}, cross-attention at 8x8 and 4x4, 16x16x4 latents | {_params(folder, 'unet'):,} |",
        "",
        f"Folder size: {size_mb:.1f} MB. Default scheduler: DPM-Solver++ 2M (v-prediction, cosine schedule, trailing timesteps).",
        "",
        "## Training recipe (this 2-core CPU)",
        f"- VAE: {recipe['vae_steps']} steps at batch {recipe['vae_batch']} (first {recipe['vae_crop_steps']} on 32x32 crops), L1 + MSE + 1e-6 KL, lr {recipe['vae_lr']}.",
        f"- UNet + text encoder together: {recipe['unet_steps']} steps at batch {recipe['unet_batch']} on cached latents, v-prediction,",
        f"  min-SNR-5 weighting truncated at 1 (`v_loss_weight`), AdamW lr {recipe['unet_lr']} with warm-up and cosine decay, EMA {recipe['ema_decay']} (exported),",
        f"  plus a caption probe (weight {recipe.get('caption_probe_weight', 0)}): linear heads on the text encoder's pooled output name",
        "  each attribute the caption states, so position words stay distinct (dropped at export).",
        f"- Decoder sharpening: {recipe['decoder_steps']} steps at batch {recipe['decoder_batch']}, edge-weighted L1 + MSE, encoder frozen.",
        *([f"- Detail: {recipe['detail_steps']} steps at batch {recipe['detail_batch']} + {recipe['detail_batch']}, lr {recipe['detail_lr']}: the whole VAE also learns",
           "  shapes carrying flat marks (`workers/shapes/detail.py`; never captioned, never seen by the UNet) so that",
           "  personal subjects (a face, stripes, dots) survive its round trip, while on flat pictures the encoder is held",
           f"  to the UNet's cached latents (MSE x {recipe['detail_anchor_weight']}) and the decoder keeps drawing them. The latents",
           "  inside a marked shape, pasted into the latents of the same picture on another background, must decode",
           "  to that picture, so a subject learned on its photos' backgrounds keeps its colours on others."]
          if recipe.get("detail_steps") else []),
        "- Lightning for every stage, checkpoints every "
        f"{recipe['checkpoint_every']} steps, TensorBoard logs; `imagebooth train-base --resume` continues an interrupted run.",
        "",
        "| stage | wall time (s) |",
        "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in times.items()],
        f"| **total** | **{sum(times.values()):.0f}** ({sum(times.values()) / 60:.0f} min) |",
        "",
        "The run shared the machine's two cores with other work, so these times are upper bounds.",
        "",
    ]
    if vae_check:
        lines += ["VAE round trip on 500 held-out drawn pictures, read back by the pixel reader: "
                  f"attribute accuracy {vae_check['attribute_accuracy']}, all five {vae_check['all_five']}."
                  + (f" On 250 held-out detailed pictures {vae_check['detail_pixel_agreement']:.1%} of pixels keep their palette colour."
                     if "detail_pixel_agreement" in vae_check else ""), ""]
    lines += [
        "## Prompt fidelity (`imagebooth eval prompts`)",
        "200 random prompts stating all five attributes, fixed seeds, read back from pixels.",
        "",
        "| steps | guidance | attribute accuracy | all five | " + " | ".join(ATTRIBUTES) + " | s / picture |",
        "|---|---|---|---|" + "---|" * len(ATTRIBUTES) + "---|",
    ]
    for e in evals:
        lines.append(f"| {e['steps']} | {e['guidance']} | {e['attribute_accuracy']} | {e['all_five']} | "
                     + " | ".join(str(e[a]) for a in ATTRIBUTES) + f" | {e['seconds_per_picture']} |")
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
