"""DreamBooth fine-tuning, callable from the Celery task and the CLI alike.

    1. preparing     load the base model's parts, encode the subject's pictures once (and
                     keep `holdout_photos` of them out of training, to score checkpoints on)
    2. class_images  fill the class-image bank (shared across jobs), encode those pictures
    3. training      Lightning: checkpoints every N steps that a resumed run continues from
                     exactly (resume.py), each scored (best_step.py)
    4. validating    the chosen step's weights; pictures for a few fixed prompts, saved
    5. done          export only its trained weights (no optimizer state)
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    on_loss: Callable[[int, float], None] = lambda step, loss: None  # each optimizer step's loss
    on_checkpoints: Callable[[dict], None] = lambda summary: None  # best_step.summary after each scoring


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
        self.hooks.on_loss(trainer.global_step, float(outputs["loss"]))
        self.hooks.on_progress(trainer.global_step, self.total)
        if self.hooks.should_cancel():
            trainer.should_stop = True


@dataclass
class BaseParts:
    """The base model's parts a fine-tune uses; SDXL has two tokenizers and text encoders."""

    family: str  # "sd" or "sdxl"
    vae: Any
    unet: Any
    text_encoders: list
    tokenizers: list
    scheduler: Any

    @property
    def native_resolution(self) -> int:
        return self.unet.config.sample_size * 2 ** (len(self.vae.config.block_out_channels) - 1)


def load_base(base_model: Path) -> BaseParts:
    """The base's parts, from its diffusers folder or single file (read as the engine reads it:
    local files only, a single file against its config folder). SDXL's frozen UNet and text
    encoders are held in bf16 (its 3.5B parameters are 14 GB in fp32); the VAE, used once per
    picture before training, is fp32 (SDXL's overflows in half precision)."""
    from dataclasses import replace

    from diffusers import DDPMScheduler

    from workers.engine.families import model_kind, read_pipeline
    from workers.engine.profiles import resolve_profile

    family = model_kind(Path(base_model)).family
    dtype = torch.bfloat16 if family == "sdxl" else torch.float32
    profile = replace(resolve_profile("quality", torch.device("cpu")), unet_dtype=dtype, text_encoder_dtype=dtype)
    pipe = read_pipeline(Path(base_model), profile)
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if family == "sdxl" else [])
    for part in (pipe.unet, *encoders):
        part.to(dtype)
    vae = pipe.vae.to(torch.float32).requires_grad_(False).eval()
    return BaseParts(family, vae, pipe.unet, encoders, tokenizers, DDPMScheduler.from_config(pipe.scheduler.config))


@dataclass
class TrainingData:
    instance: torch.Tensor  # latents of the photos trained on (and their background variants)
    klass: torch.Tensor | None  # class-image latents (prior preservation)
    heldout: torch.Tensor | None  # latents of the photos kept out of training
    photos: list  # the trained photos as pictures (the subject reader's signature)


def run_finetune(job: FinetuneJob, hooks: Hooks | None = None) -> dict:
    hooks = hooks or Hooks()
    cfg, started = job.config, time.monotonic()
    L.seed_everything(cfg.seed, workers=True)
    # 1. preparing, 2. class_images: the bank first, made by the engine, whose warm copy of the
    # base is dropped before the trainable parts load (a real-size base held twice doubles the
    # worker's memory: SDXL would be 14 GB)
    hooks.on_phase("preparing")
    trained, heldout = split_photos(job.images, cfg.holdout_photos)
    class_paths = None
    if cfg.prior_preservation and cfg.num_class_images > 0:
        hooks.on_phase("class_images")
        from workers.dreambooth.class_images import ensure_class_images

        class_paths = ensure_class_images(job.class_bank, job.base_model, class_prompt(job.class_noun),
                                          cfg.num_class_images, cfg.class_image_steps, size=cfg.resolution or None)
        release_engine_models()
    parts = load_base(job.base_model)
    vae, resolution = parts.vae, cfg.resolution or parts.native_resolution
    photos = [load_picture(p, resolution) for p in trained]
    instance = encode_pictures(vae, with_background_variants(photos, cfg.background_variants))
    heldout_latents = encode_pictures(vae, [load_picture(p, resolution) for p in heldout]) if heldout else None
    klass = encode_pictures(vae, [load_picture(p, resolution) for p in class_paths]) if class_paths else None
    timings = {"prepare_s": time.monotonic() - started}
    # 3. training
    hooks.on_phase("training")
    data = TrainingData(instance, klass, heldout_latents, photos)
    module, trainer, store = fit(job, parts, resolution, data, hooks)
    timings["train_s"] = time.monotonic() - started - timings["prepare_s"]
    if trainer.global_rank != 0:
        return {}  # with several devices only the first process validates and exports
    # 4. validating: the chosen step's weights
    hooks.on_phase("validating")
    from workers.dreambooth.best_step import load_best, summary
    from workers.dreambooth.export import export_model, validation_pictures

    checkpoints = summary(store.checkpoints(), cfg.steps)
    load_best(module, store, checkpoints["chosen_step"] or cfg.steps)
    pictures = validation_pictures(job, vae, module, parts.tokenizers)
    # 5. done
    card = export_model(job, module, pictures, timings, checkpoints)
    hooks.on_phase("done")
    return card


def release_engine_models() -> None:
    import gc

    from workers.engine.loading import process_cache

    process_cache().clear()
    gc.collect()


def free_training_memory() -> None:
    """Give the finished fine-tune's memory back. Its modules and optimizer sit in reference
    cycles (Lightning's trainer and module point at each other) until the collector runs, and
    glibc keeps freed heap pages: after an SDXL job 8.7 GB stayed resident (2.3 GB after
    gc.collect, 0.6 GB after malloc_trim, measured in one process), and in a worker that also
    serves generations the engine's reload of the base then took it to 21 of 25 GB."""
    import ctypes
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def split_photos(images: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """The photos to train on and the last `holdout` ones kept out (at least 3 are trained on)."""
    kept_out = min(holdout, max(0, len(images) - 3))
    return list(images[: len(images) - kept_out]), list(images[len(images) - kept_out:])


def with_background_variants(pictures: list, background_variants: bool) -> list:
    if not background_variants:
        return pictures
    from workers.dreambooth.backgrounds import background_variants as variants_of
    from workers.shapes.world import PALETTE

    return pictures + [v for picture in pictures for v in variants_of(picture, PALETTE)]


def _probes(job: FinetuneJob, module, parts: BaseParts, data: TrainingData) -> list:
    from workers.dreambooth.config import preset_name_for
    from workers.dreambooth.data import instance_prompt
    from workers.dreambooth.scoring import LossProbe, ReaderProbe

    scoring = job.config.checkpoint_scoring
    if scoring == "off":
        return []
    klass = data.klass if data.klass is not None else data.instance
    probes: list = [LossProbe(module, parts.tokenizers, data.heldout, klass, instance_prompt(job.token, job.class_noun),
                              class_prompt(job.class_noun))]
    if scoring == "reader" or (scoring == "auto" and preset_name_for(job.base_model) == "shapes"):
        probes.append(ReaderProbe(module, parts.tokenizers, parts.vae, job.base_model, data.photos, job.token, job.class_noun))
    return probes


def _logger(job: FinetuneJob):
    if job.config.tracker == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        # offline: the run is written under the work folder and never sent (`wandb sync` can later)
        os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        return WandbLogger(project="imagebooth-dreambooth", name=job.work_dir.name, save_dir=str(job.work_dir),
                           offline=True, config=job.config.to_dict())
    return TensorBoardLogger(str(job.work_dir), name="tensorboard", version=0)


def fit(job: FinetuneJob, parts: BaseParts, resolution: int, data: TrainingData, hooks: Hooks):
    from workers.dreambooth.best_step import CheckpointScorer, ScoreStore
    from workers.dreambooth.module import DreamBoothModule
    from workers.dreambooth.resume import RandomStates

    cfg = job.config
    # Seeded again here: whether preparing drew random numbers (a class-image bank made now, or
    # found made) must not change the LoRA's initial weights or the first step's noise.
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = DreamBoothModule(parts.unet, parts.text_encoders, parts.scheduler, cfg, resolution)
    datamodule = DreamBoothData(data.instance, data.klass, parts.tokenizers, job.token, job.class_noun, cfg.steps,
                                cfg.batch_size, cfg.accumulate_grad_batches, cfg.seed)
    store = ScoreStore(job.work_dir)
    ckpt_dir = job.work_dir / "checkpoints"
    trainer = L.Trainer(
        max_steps=cfg.steps,
        accelerator="auto",
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.resolved_precision(parts.family),
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=cfg.gradient_clip or None,
        logger=_logger(job),
        callbacks=[
            # Lightning runs checkpoint callbacks last: a step's scores are on disk before its checkpoint
            CheckpointScorer(store, _probes(job, module, parts, data), cfg.checkpoint_every, cfg.steps,
                             hooks.on_checkpoints),
            RandomStates(),
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
    with warnings.catch_warnings():
        # "not resumable" refers to the loader; the data module restores the position (resume.py)
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)
    if trainer.global_step < cfg.steps:
        raise Canceled(f"stopped at step {trainer.global_step} of {cfg.steps}")
    return module, trainer, store
