"""The end of a fine-tune: validation pictures, then the personal model folder.

The folder holds only what was trained - `unet/` and `text_encoder/` for a full fine-tune
(safetensors), or `pytorch_lora_weights.safetensors` for LoRA (with the same weights in the
kohya/A1111 layout beside it, kohya.py) - plus a model card; the
base model's other parts are shared at load time, and no optimizer state is kept.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from app.catalog.model_card import CARD_NAME
from workers.engine.families import base_architecture

VALIDATION_SEEDS = (0, 1, 2, 3)


def validation_prompts(token: str, class_noun: str) -> list[str]:
    from workers.dreambooth.data import class_prompt, instance_prompt

    subject = instance_prompt(token, class_noun)
    return [subject, f"{subject} on a blue background", f"{subject} on the left", class_prompt(class_noun)]


class SamplingPipeline:
    """The modules being trained in a stock pipeline, drawing at the base model card's steps and
    guidance (validation pictures, checkpoint scores)."""

    def __init__(self, base_model: Path, vae, unet, text_encoder, tokenizer):
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

        from app.catalog.model_card import model_defaults

        self.defaults = model_defaults(base_model)
        scheduler = DPMSolverMultistepScheduler.from_pretrained(str(base_model), subfolder="scheduler")
        self.pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                            scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                            requires_safety_checker=False)
        self.pipe.set_progress_bar_config(disable=True)

    @torch.no_grad()
    def draw(self, prompts: list[str], generators: list[torch.Generator]) -> list:
        return self.pipe(prompts, num_inference_steps=self.defaults.steps, guidance_scale=self.defaults.guidance_scale,
                         generator=generators).images


@torch.no_grad()
def validation_pictures(job, vae, unet, text_encoder, tokenizer) -> dict[str, list]:
    pipe = SamplingPipeline(job.base_model, vae, unet, text_encoder, tokenizer)
    unet.eval(), text_encoder.eval()
    pictures = {}
    for prompt in validation_prompts(job.token, job.class_noun):
        generators = [torch.Generator().manual_seed(s) for s in VALIDATION_SEEDS]
        pictures[prompt] = pipe.draw([prompt] * len(generators), generators)
    return pictures


def export_model(job, module, pictures: dict[str, list], timings: dict, checkpoints: dict) -> dict:
    """The personal model folder, with the module's weights (the chosen step's: best_step)."""
    out = Path(job.out_dir)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if job.config.method == "lora":
        _save_lora(module, staging, job.config.train_text_encoder, job.config.lora_rank)
    else:
        module.unet.save_pretrained(str(staging / "unet"), safe_serialization=True)
        if job.config.train_text_encoder:
            module.text_encoder.save_pretrained(str(staging / "text_encoder"), safe_serialization=True)
    validation = staging / "validation"
    validation.mkdir()
    names = []
    for p, (prompt, images) in enumerate(pictures.items()):
        for k, image in enumerate(images):
            name = f"{p:02d}-{k}.png"
            image.save(validation / name)
            names.append({"prompt": prompt, "file": f"validation/{name}"})
    card = {
        "token": job.token, "class_noun": job.class_noun, "method": job.config.method,
        "base_model": str(job.base_model), "base_architecture": base_architecture(module.unet),
        "config": job.config.to_dict(),
        "timings": {k: round(v, 2) for k, v in timings.items()}, "validation": names,
        "checkpoints": checkpoints,
    }
    (staging / CARD_NAME).write_text(json.dumps(card, indent=2))
    # the folder appears whole or not at all: a crash here leaves only the .partial
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return card


def _save_lora(module, folder: Path, with_text_encoder: bool, rank: int) -> None:
    """The diffusers/peft file the engine serves, and the same weights in the kohya layout."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    from workers.dreambooth.kohya import write_kohya

    unet_peft = get_peft_model_state_dict(module.unet)
    text_peft = get_peft_model_state_dict(module.text_encoder) if with_text_encoder else None
    StableDiffusionPipeline.save_lora_weights(
        str(folder), unet_lora_layers=convert_state_dict_to_diffusers(unet_peft),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(text_peft) if text_peft else None,
        safe_serialization=True)
    write_kohya(folder, unet_peft, text_peft, rank)
