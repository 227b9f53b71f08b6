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


def validation_prompts(token: str, class_noun: str) -> list[str]:
    from workers.dreambooth.data import class_prompt, instance_prompt

    subject = instance_prompt(token, class_noun)
    return [subject, f"{subject} on a blue background", f"{subject} on the left", class_prompt(class_noun)]


class SamplingPipeline:
    """The module being trained in its family's stock pipeline, drawing at its training
    resolution with the base model card's steps and guidance (validation pictures, checkpoint
    scores). Draw inside `module.inference()`."""

    def __init__(self, base_model: Path, vae, module, tokenizers, steps: int = 0):
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

        from app.catalog.model_card import model_defaults

        self.defaults, self.resolution = model_defaults(base_model), module.resolution
        self.steps = steps or self.defaults.steps
        scheduler = DPMSolverMultistepScheduler.from_config(module.noise_scheduler.config)
        if module.text_encoder_2 is not None:
            self.pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=module.text_encoder,
                                                  text_encoder_2=module.text_encoder_2, tokenizer=tokenizers[0],
                                                  tokenizer_2=tokenizers[1], unet=module.unet, scheduler=scheduler,
                                                  add_watermarker=False)
        else:
            self.pipe = StableDiffusionPipeline(vae=vae, text_encoder=module.text_encoder, tokenizer=tokenizers[0],
                                                unet=module.unet, scheduler=scheduler, safety_checker=None,
                                                feature_extractor=None, requires_safety_checker=False)
        self.pipe.set_progress_bar_config(disable=True)

    def draw(self, prompts: list[str], generators: list[torch.Generator]) -> list:
        return self.pipe(prompts, num_inference_steps=self.steps, guidance_scale=self.defaults.guidance_scale,
                         height=self.resolution, width=self.resolution, generator=generators).images


def validation_pictures(job, vae, module, tokenizers) -> dict[str, list]:
    """`validation_images` pictures of each validation prompt at `validation_steps` (the preset's)."""
    cfg = job.config
    if cfg.validation_images == 0:
        return {}
    pipe = SamplingPipeline(job.base_model, vae, module, tokenizers, cfg.validation_steps)
    pictures = {}
    with module.inference():
        for prompt in validation_prompts(job.token, job.class_noun):
            generators = [torch.Generator().manual_seed(seed) for seed in range(cfg.validation_images)]
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
            if module.text_encoder_2 is not None:
                module.text_encoder_2.save_pretrained(str(staging / "text_encoder_2"), safe_serialization=True)
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
    """The diffusers/peft file the engine serves and, for SD 1.x/2.x, the same weights in the
    kohya layout. (kohya's SDXL files name the UNet's modules by the original SGM layout, which
    no converter here writes: an SDXL LoRA has the diffusers file only.)"""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    from workers.dreambooth.kohya import write_kohya

    unet_peft = get_peft_model_state_dict(module.unet)
    text_peft = [get_peft_model_state_dict(encoder) if with_text_encoder else None for encoder in module.text_encoders]
    layers = [convert_state_dict_to_diffusers(peft) if peft else None for peft in text_peft]
    if module.text_encoder_2 is not None:
        StableDiffusionXLPipeline.save_lora_weights(
            str(folder), unet_lora_layers=convert_state_dict_to_diffusers(unet_peft),
            text_encoder_lora_layers=layers[0], text_encoder_2_lora_layers=layers[1], safe_serialization=True)
        return
    StableDiffusionPipeline.save_lora_weights(
        str(folder), unet_lora_layers=convert_state_dict_to_diffusers(unet_peft),
        text_encoder_lora_layers=layers[0], safe_serialization=True)
    write_kohya(folder, unet_peft, text_peft[0], rank)
