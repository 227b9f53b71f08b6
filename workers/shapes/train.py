"""`imagebooth train-base`: reproduces the bundled model from nothing, resumably.

Stages (each skipped when its output already exists, so an interrupted run picks up where
it stopped; the two training stages resume from their last Lightning checkpoint):
  1. draw the data set          5. train the UNet and text encoder on them
  2. train the tokenizer        6. sharpen the decoder (encoder frozen)
  3. train the VAE              7. teach the VAE detail inside shapes, latents held; check it
  4. cache the latents          8. export a diffusers folder (EMA weights, safetensors)
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# Spinning OpenMP threads collapse throughput when another process shares the two cores
# (measured: 1.3 s per VAE step spinning vs 0.7 s passive); set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from workers.shapes.recipe import TINY, Recipe

DEFAULT_WORK_DIR = Path(os.environ.get("IMAGEBOOTH_TRAIN_DIR", Path.home() / ".cache" / "imagebooth" / "train-base"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imagebooth train-base", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML file overriding recipe fields")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="checkpoints, logs and caches")
    parser.add_argument("--out", type=Path, help="where the diffusers folder goes (default models/<name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --work-dir (default: refuse to mix runs)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration")
    parser.add_argument("--export-only", action="store_true",
                        help="with --resume: export the EMA weights of the last checkpoint now, without training on")
    return parser.parse_args(argv)


def load_recipe(args: argparse.Namespace) -> Recipe:
    saved = args.work_dir / "recipe.json"
    if args.resume and saved.exists() and not (args.config or args.tiny):
        return Recipe.from_dict(json.loads(saved.read_text()))  # resuming keeps the run's recipe
    if args.tiny:
        return Recipe.from_dict(TINY)
    return Recipe.from_yaml(args.config) if args.config else Recipe()


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    recipe = load_recipe(args)
    work = args.work_dir
    recipe_file = work / "recipe.json"
    if recipe_file.exists() and not args.resume:
        raise SystemExit(f"{work} holds an earlier run: pass --resume to continue it, or choose another --work-dir")
    work.mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(json.dumps(recipe.to_dict(), indent=2))
    out = args.out or Path(__file__).resolve().parents[2] / "models" / recipe.model_name
    started = time.monotonic()
    if args.export_only:
        from workers.shapes import stages

        stages.export_checkpoint(recipe, work, out)
        print(f"exported the last checkpoint -> {out}")
        return out
    train_recipe(recipe, work, out)
    print(f"done in {(time.monotonic() - started) / 60:.1f} min -> {out}")
    return out


def train_recipe(recipe: Recipe, work: Path, out: Path) -> None:
    from workers.shapes import stages

    torch.set_num_threads(os.cpu_count() or 1)
    timings = stages.load_timings(work)
    pixels, scenes = stages.timed(timings, work, "data", lambda: stages.data(recipe, work))
    tokenizer = stages.timed(timings, work, "tokenizer", lambda: stages.tokenizer(recipe, work))
    vae = stages.timed(timings, work, "vae", lambda: stages.vae(recipe, work, pixels))
    latents, scaling = stages.timed(timings, work, "latents", lambda: stages.latents(work, vae, pixels))
    unet, text_encoder = stages.timed(
        timings, work, "unet", lambda: stages.unet(recipe, work, latents, scenes, tokenizer, scaling)
    )
    # the decoder stage leaves the encoder (and so the UNet's latents) as they are
    vae = stages.timed(timings, work, "decoder", lambda: stages.decoder(recipe, work, vae, latents, pixels))
    # detail inside shapes for personal subjects, the flat world's latents held in place
    vae = stages.timed(timings, work, "detail", lambda: stages.detail(recipe, work, vae, latents, pixels))
    stages.timed(timings, work, "vae_check", lambda: stages.vae_check(recipe, work, vae))
    stages.timed(timings, work, "export", lambda: stages.export(recipe, out, vae, unet, text_encoder, tokenizer, scaling, timings))
