"""DreamBooth fine-tuning, callable from the Celery task and the CLI alike.

    1. preparing     load the base model's parts, encode the subject's pictures once
    2. class_images  fill the class-image bank (shared across jobs), encode those pictures
    3. training      Lightning: checkpoints every N steps, resume from the last one
    4. validating    pictures for a few fixed prompts, logged and saved
    5. done          export only the trained weights (no optimizer state)
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from workers.dreambooth.config import FinetuneConfig
from workers.dreambooth.data import DreamBoothData, class_prompt, encode_pictures, load_picture


class Canceled(Exception):
    """The job was canceled while training; its checkpoints stay for a possible resume."""


@dataclass
class Hooks:
    """How a caller watches and steers a job (the Celery task writes these to the database)."""

    on_phase: Callable[[str], None] = lambda phase: None
    on_progress: Callable[[int, int], None] = lambda step, total: None
    should_cancel: Callable[[], bool] = lambda: False


@dataclass
class FinetuneJob:
    images: list[Path]
    class_noun: str
    token: str
    base_model: Path
    out_dir: Path  # the personal model folder
    work_dir: Path  # checkpoints, TensorBoard logs
    class_bank: Path
    config: FinetuneConfig = field(default_factory=FinetuneConfig)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Each checkpoint is written beside its final name and renamed into place, so a worker
    killed mid-save leaves the previous checkpoint whole. (Lightning's own save stages the file
    in the system's temporary folder and moves it: a copy, not a rename, when that folder is on
    another filesystem than the work folder.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        torch.save(checkpoint, partial)
        os.replace(partial, target)


class _ProgressCallback(Callback):
    def __init__(self, hooks: Hooks, total: int):
        self.hooks, self.total = hooks, total

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.hooks.on_progress(trainer.global_step, self.total)
        if self.hooks.should_cancel():
            trainer.should_stop = True


def load_base(base_model: Path):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = str(base_model)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", local_files_only=True).requires_grad_(False).eval()
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", local_files_only=True)
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder", local_files_only=True)
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer", local_files_only=True)
    scheduler_config = DDPMScheduler.load_config(base, subfolder="scheduler", local_files_only=True)
    return vae, unet, text_encoder, tokenizer, DDPMScheduler.from_config(scheduler_config)


def run_finetune(job: FinetuneJob, hooks: Hooks | None = None) -> dict:
    hooks = hooks or Hooks()
    cfg, started = job.config, time.monotonic()
    L.seed_everything(cfg.seed, workers=True)
    # 1. preparing
    hooks.on_phase("preparing")
    vae, unet, text_encoder, tokenizer, scheduler = load_base(job.base_model)
    resolution = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    instance = encode_pictures(vae, instance_pictures(job.images, resolution, cfg.background_variants))
    # 2. class_images
    klass = None
    if cfg.prior_preservation and cfg.num_class_images > 0:
        hooks.on_phase("class_images")
        from workers.dreambooth.class_images import ensure_class_images

        paths = ensure_class_images(job.class_bank, job.base_model, class_prompt(job.class_noun),
                                    cfg.num_class_images, cfg.class_image_steps)
        klass = encode_pictures(vae, [load_picture(p, resolution) for p in paths])
    timings = {"prepare_s": time.monotonic() - started}
    # 3. training
    hooks.on_phase("training")
    module, trainer = fit(job, unet, text_encoder, tokenizer, scheduler, instance, klass, hooks)
    timings["train_s"] = time.monotonic() - started - timings["prepare_s"]
    if trainer.global_rank != 0:
        return {}  # with several devices only the first process validates and exports
    # 4. validating
    hooks.on_phase("validating")
    from workers.dreambooth.export import export_model, validation_pictures

    pictures = validation_pictures(job, vae, module.unet, module.text_encoder, tokenizer)
    # 5. done
    card = export_model(job, module, pictures, timings)
    hooks.on_phase("done")
    return card


def instance_pictures(paths: list[Path], resolution: int, background_variants: bool):
    pictures = [load_picture(p, resolution) for p in paths]
    if not background_variants:
        return pictures
    from workers.dreambooth.backgrounds import background_variants as variants_of
    from workers.shapes.world import PALETTE

    return pictures + [v for picture in pictures for v in variants_of(picture, PALETTE)]


def fit(job: FinetuneJob, unet, text_encoder, tokenizer, scheduler, instance, klass, hooks: Hooks):
    from workers.dreambooth.module import DreamBoothModule

    cfg = job.config
    module = DreamBoothModule(unet, text_encoder, scheduler, cfg)
    data = DreamBoothData(instance, klass, tokenizer, job.token, job.class_noun, cfg.steps,
                          cfg.batch_size, cfg.accumulate_grad_batches, cfg.seed)
    ckpt_dir = job.work_dir / "checkpoints"
    trainer = L.Trainer(
        max_steps=cfg.steps,
        accelerator="auto",
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.resolved_precision(),
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.gradient_clip or None,
        logger=TensorBoardLogger(str(job.work_dir), name="tensorboard", version=0),
        callbacks=[
            ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=cfg.checkpoint_every,
                            save_last=True, save_top_k=cfg.keep_checkpoints),
            _ProgressCallback(hooks, cfg.steps),
        ],
        log_every_n_steps=10,
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    last = ckpt_dir / "last.ckpt"
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    if trainer.global_step < cfg.steps:
        raise Canceled(f"stopped at step {trainer.global_step} of {cfg.steps}")
    return module, trainer
