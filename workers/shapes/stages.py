"""The stages of the base-model recipe (see train.py), each resumable on its own."""
from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from workers.shapes.architecture import build_text_encoder, build_unet, build_vae
from workers.shapes.captions import card_vocabulary
from workers.shapes.dataset import CaptionCollate, CaptionedLatents, load_or_draw, to_model_range
from workers.shapes.recipe import Recipe
from workers.shapes.tokenizer import MAX_LENGTH, train_tokenizer


def load_timings(work: Path) -> dict:
    path = work / "timings.json"
    return json.loads(path.read_text()) if path.exists() else {}


def timed(timings: dict, work: Path, name: str, stage):
    """Runs a stage and adds its wall time to timings.json (summed across resumed runs)."""
    started = time.monotonic()
    result = stage()
    timings[name] = timings.get(name, 0.0) + time.monotonic() - started
    (work / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"[train-base] {name}: {timings[name]:.0f} s so far", flush=True)
    return result


def data(recipe: Recipe, work: Path):
    return load_or_draw(work / "data.pt", recipe.dataset_size, recipe.seed, recipe.arch.image_size)


def tokenizer(recipe: Recipe, work: Path):
    from transformers import CLIPTokenizer

    folder = work / "tokenizer"
    if not (folder / "tokenizer_config.json").exists():
        train_tokenizer(folder, seed=recipe.seed)
    return CLIPTokenizer.from_pretrained(str(folder))


def _trainer(work: Path, name: str, steps: int, every: int) -> tuple[L.Trainer, str | None]:
    ckpt_dir = work / "checkpoints" / name
    last = ckpt_dir / "last.ckpt"
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(str(work / "tensorboard"), name=name),
        callbacks=[ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=every, save_last=True, save_top_k=1)],
        log_every_n_steps=25,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return trainer, (str(last) if last.exists() else None)


class _Pictures(torch.utils.data.Dataset):
    def __init__(self, pixels: torch.Tensor):
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_model_range(self.pixels[index])


def vae(recipe: Recipe, work: Path, pixels: torch.Tensor):
    from diffusers import AutoencoderKL

    from workers.shapes.vae_module import VaeTraining

    done = work / "vae"
    if (done / "config.json").exists():
        return AutoencoderKL.from_pretrained(str(done)).eval()
    L.seed_everything(recipe.seed, workers=True)
    module = VaeTraining(build_vae(recipe.arch), recipe.vae_lr, recipe.vae_steps, recipe.vae_crop_steps)
    loader = torch.utils.data.DataLoader(_Pictures(pixels), batch_size=recipe.vae_batch, shuffle=True, drop_last=True)
    trainer, resume = _trainer(work, "vae", recipe.vae_steps, recipe.checkpoint_every)
    trainer.fit(module, loader, ckpt_path=resume)
    module.vae.save_pretrained(str(done))
    return module.vae.eval().requires_grad_(False)


@torch.no_grad()
def vae_check(recipe: Recipe, work: Path, vae_model, count: int = 500) -> dict:
    """Round-trips held-out drawn pictures through the VAE and reads them back: the VAE caps
    every later stage, so its attribute accuracy must be near 1.0 before the UNet trains."""
    from workers.shapes.dataset import draw_dataset
    from workers.shapes.evaluate import score
    from workers.shapes.reader import read_picture

    pixels, scenes = draw_dataset(min(count, recipe.dataset_size), recipe.seed + 1, recipe.arch.image_size)
    images = _round_trip(vae_model, pixels)
    scores = score([read_picture(img).attributes() for img in images], [s.attributes() for s in scenes])
    scores["detail_pixel_agreement"] = detail_agreement(vae_model, count // 2, recipe.seed + 2, recipe.arch.image_size)
    (work / "vae_check.json").write_text(json.dumps(scores, indent=2))
    print(f"[train-base] VAE round trip: {scores}", flush=True)
    return scores


def _round_trip(vae_model, pixels: torch.Tensor) -> np.ndarray:
    """uint8 (N, 3, H, W) through encode (posterior mode) and decode -> uint8 (N, H, W, 3)."""
    recon = vae_model.decode(vae_model.encode(to_model_range(pixels)).latent_dist.mode()).sample
    return ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def detail_agreement(vae_model, count: int, seed: int, image_size: int) -> float:
    """Share of pixels of held-out detailed pictures (detail.py) whose palette colour
    survives the VAE round trip: what a subject's marks can keep."""
    from workers.shapes.detail import draw_detailed_batch
    from workers.shapes.reader import palette_labels

    pixels = draw_detailed_batch(count, seed, image_size)
    recon, source = _round_trip(vae_model, pixels), pixels.permute(0, 2, 3, 1).numpy()
    return round(float(np.mean([(palette_labels(a) == palette_labels(b)).mean() for a, b in zip(recon, source)])), 4)


@torch.no_grad()
def latents(work: Path, vae_model, pixels: torch.Tensor):
    path = work / "latents.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["latents"], saved["scaling"]
    chunks = [vae_model.encode(to_model_range(pixels[i : i + 256])).latent_dist.mode() for i in range(0, len(pixels), 256)]
    cached = torch.cat(chunks)
    scaling = float(1.0 / cached.std())
    torch.save({"latents": cached, "scaling": scaling}, path)
    return cached, scaling


def noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False
    )


def unet(recipe: Recipe, work: Path, cached: torch.Tensor, scenes, tok, scaling: float):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from workers.shapes.diffusion_module import DiffusionTraining

    done = work / "unet_ema"
    if (done / "unet" / "config.json").exists():
        return (UNet2DConditionModel.from_pretrained(str(done / "unet")),
                CLIPTextModel.from_pretrained(str(done / "text_encoder")))
    L.seed_everything(recipe.seed, workers=True)
    text_encoder = build_text_encoder(recipe.arch, len(tok), tok.bos_token_id, tok.eos_token_id, MAX_LENGTH)
    module = DiffusionTraining(
        build_unet(recipe.arch), text_encoder, noise_scheduler(), scaling,
        recipe.unet_lr, recipe.unet_steps, recipe.ema_decay, warmup=min(300, recipe.unet_steps // 10 + 1),
        probe_weight=recipe.caption_probe_weight,
    )
    collate = CaptionCollate(scenes, tok, seed=recipe.seed, dropout=recipe.caption_dropout)
    loader = torch.utils.data.DataLoader(
        CaptionedLatents(cached), batch_size=recipe.unet_batch, shuffle=True, drop_last=True, collate_fn=collate
    )
    trainer, resume = _trainer(work, "unet", recipe.unet_steps, recipe.checkpoint_every)
    trainer.fit(module, loader, ckpt_path=resume)
    module.ema_unet.save_pretrained(str(done / "unet"))
    module.ema_text_encoder.save_pretrained(str(done / "text_encoder"))
    return module.ema_unet.eval(), module.ema_text_encoder.eval()


class _LatentPictures(torch.utils.data.Dataset):
    def __init__(self, latents: torch.Tensor, pixels: torch.Tensor):
        self.latents, self.pixels = latents, pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int):
        return self.latents[index], to_model_range(self.pixels[index])


def decoder(recipe: Recipe, work: Path, vae_model, cached: torch.Tensor, pixels: torch.Tensor):
    """Sharpens the decoder on the cached latents with an edge-weighted loss (the encoder,
    and so the UNet's latents, stay as they are)."""
    from diffusers import AutoencoderKL

    from workers.shapes.vae_module import DecoderTraining

    done = work / "vae_decoder"
    if (done / "config.json").exists():
        return AutoencoderKL.from_pretrained(str(done)).eval()
    L.seed_everything(recipe.seed, workers=True)
    module = DecoderTraining(vae_model, recipe.decoder_lr, recipe.decoder_steps, recipe.decoder_edge_weight)
    return _fit_vae(recipe, work, "decoder", done, module, _LatentPictures(cached, pixels),
                    recipe.decoder_batch, recipe.decoder_steps)


def _fit_vae(recipe: Recipe, work: Path, name: str, done: Path, module, dataset, batch: int, steps: int):
    """Trains a VAE stage's module (resuming from its checkpoint) and saves its VAE to `done`."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    trainer, resume = _trainer(work, name, steps, recipe.checkpoint_every)
    module.vae.train()
    trainer.fit(module, loader, ckpt_path=resume)
    module.vae.save_pretrained(str(done))
    return module.vae.eval().requires_grad_(False)


class _FlatAndDetailed(torch.utils.data.Dataset):
    """A flat training picture with its cached latent, and a marked shape (detail.py) on two
    backgrounds with its inside-cell mask, drawn from the index so every run sees the same."""

    def __init__(self, latents: torch.Tensor, pixels: torch.Tensor, seed: int):
        self.latents, self.pixels, self.seed = latents, pixels, seed

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int):
        import random

        from workers.shapes.detail import detailed_pair

        here, there, inside = detailed_pair(random.Random(f"{self.seed}-{index}"), self.pixels.shape[-1])
        here, there = (to_model_range(torch.from_numpy(np.array(p)).permute(2, 0, 1)) for p in (here, there))
        return to_model_range(self.pixels[index]), self.latents[index], here, there, torch.from_numpy(inside)[None]


def detail(recipe: Recipe, work: Path, vae_model, cached: torch.Tensor, pixels: torch.Tensor):
    """Teaches the autoencoder detail inside shapes, the flat world's latents held in place
    (vae_module.DetailTraining), so personal subjects with a face or stripes survive it."""
    from diffusers import AutoencoderKL

    from workers.shapes.vae_module import DetailTraining

    done = work / "vae_detail"
    if (done / "config.json").exists():
        return AutoencoderKL.from_pretrained(str(done)).eval()
    L.seed_everything(recipe.seed, workers=True)
    module = DetailTraining(vae_model, recipe.detail_lr, recipe.detail_steps, recipe.decoder_edge_weight,
                            recipe.detail_anchor_weight)
    return _fit_vae(recipe, work, "detail", done, module, _FlatAndDetailed(cached, pixels, recipe.seed),
                    recipe.detail_batch, recipe.detail_steps)


def fast_scheduler():
    """The exported default: DPM-Solver++ (2M), few steps, timesteps from the very end."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
        algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing", steps_offset=1,
    )


def export(recipe: Recipe, out: Path, vae_model, unet_model, text_encoder, tok, scaling: float, timings: dict) -> None:
    from diffusers import StableDiffusionPipeline

    vae_model.register_to_config(scaling_factor=scaling)
    pipe = StableDiffusionPipeline(
        vae=vae_model, text_encoder=text_encoder, tokenizer=tok, unet=unet_model, scheduler=fast_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    # shards under 15 MB keep every file small enough for a plain git repository
    pipe.save_pretrained(str(out), safe_serialization=True, max_shard_size="15MB")
    for name in ("vocab.json", "merges.txt"):  # the slow-tokenizer files too, for older tools
        (out / "tokenizer" / name).write_bytes((Path(tok.name_or_path) / name).read_bytes())
    (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
    (out / "training_times.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=2))
    write_card_vocabulary(out)


def write_card_vocabulary(out: Path) -> None:
    """The words the model knows go into its card; the sampling defaults already there stay."""
    card_file = out / "imagebooth_model.json"
    card = json.loads(card_file.read_text()) if card_file.exists() else {"name": out.name}
    card["vocabulary"] = card_vocabulary()
    card_file.write_text(json.dumps(card, indent=2) + "\n")


def export_checkpoint(recipe: Recipe, work: Path, out: Path) -> None:
    """Exports the EMA weights of the UNet stage's last checkpoint (a run still going, or
    one that was interrupted), so a model can be looked at before training ends."""
    from diffusers import AutoencoderKL

    tok = tokenizer(recipe, work)
    vae_dir = next(work / name for name in ("vae_detail", "vae_decoder", "vae") if (work / name / "config.json").exists())
    vae_model = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    scaling = float(torch.load(work / "latents.pt")["scaling"])
    state = torch.load(work / "checkpoints" / "unet" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    unet_model = build_unet(recipe.arch)
    text_encoder = build_text_encoder(recipe.arch, len(tok), tok.bos_token_id, tok.eos_token_id, MAX_LENGTH)
    for prefix, model in (("ema_unet.", unet_model), ("ema_text_encoder.", text_encoder)):
        model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    export(recipe, out, vae_model, unet_model.eval(), text_encoder.eval(), tok, scaling, load_timings(work))
