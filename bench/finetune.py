"""DreamBooth speed: ImageBooth's fine-tune against a straightforward loop, one run.

Work (issue 6): 400 steps with prior preservation, 50 class images, text encoder trained,
one instance and one class picture per step, on the bundled model.
- baseline "naive": what the reference scripts do - class images from the stock pipeline
  at its default 50 steps, and every step encodes both pictures with the VAE again;
- "ours, cold bank": run_finetune with an empty class-image bank;
- "ours, warm bank": the same job again, the bank already filled by the first.
- with --diffusers-script PATH: diffusers' own examples/dreambooth/train_dreambooth.py (the
  reference implementation; not part of this repository, fetch it yourself) on the same
  model, subject and settings, from an empty class folder. Where torchvision is missing
  (it does not install beside this CPU torch), bench/shims/run_reference.py runs the script
  with a stand-in for the few transforms it uses.
Each variant runs in its own process so that its peak memory is its own.

    python bench/finetune.py [--steps 400] [--class-images 50] [--model models/shapes-v1]
                             [--diffusers-script train_dreambooth.py]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIMS = Path(__file__).resolve().parent / "shims"


def naive(model: Path, work: Path, steps: int, class_images: int) -> dict:
    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionPipeline

    from workers.dreambooth.data import load_picture, to_tensor
    from workers.dreambooth.subjects import TUNING_SUBJECTS, subject_photos

    subject = TUNING_SUBJECTS[0]
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(str(model), local_files_only=True, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    class_pics = []
    for i in range(0, class_images, 4):  # the reference scripts' default sample batch of 4
        class_pics += pipe([f"a {subject.class_noun}"] * min(4, class_images - i), num_inference_steps=50,
                           generator=generator).images
    class_s = time.perf_counter() - started
    photos = [load_picture(p, 64) for p in subject_photos(subject, 4, work / "photos")]
    vae, unet, te, tok = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    unet.train(), te.train()
    optimizer = torch.optim.AdamW(list(unet.parameters()) + list(te.parameters()), lr=2e-4)
    ids = tok(["a sks square", "a square"], padding="max_length", max_length=tok.model_max_length,
              return_tensors="pt").input_ids
    for step in range(steps):
        pixels = to_tensor([photos[step % len(photos)], class_pics[step % len(class_pics)]])
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (2,))
        noisy = scheduler.add_noise(latents, noise, t)
        target = scheduler.get_velocity(latents, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
        loss = F.mse_loss(unet(noisy, t, te(ids)[0]).sample, target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    total = time.perf_counter() - started
    return {"total_s": total, "class_images_s": class_s, "train_s": total - class_s}


def ours(model: Path, work: Path, steps: int, class_images: int) -> dict:
    from workers.dreambooth.config import load_config
    from workers.dreambooth.subjects import TUNING_SUBJECTS, subject_photos
    from workers.dreambooth.train import FinetuneJob, run_finetune

    subject = TUNING_SUBJECTS[0]
    run = work / f"run-{time.monotonic_ns()}"
    job = FinetuneJob(images=subject_photos(subject, 4, run / "photos"), class_noun=subject.class_noun,
                      token="sks", base_model=model, out_dir=run / "model", work_dir=run / "work",
                      class_bank=work / "bank",
                      config=load_config(model, steps=steps, num_class_images=class_images, prior_preservation=True,
                                         train_text_encoder=True, batch_size=1))
    started = time.perf_counter()
    card = run_finetune(job)
    return {"total_s": time.perf_counter() - started, **card["timings"]}


def diffusers_script(script: Path, model: Path, work: Path, steps: int, class_images: int) -> dict:
    """Runs the reference script with the benchmark's settings and our preset's learning rate."""
    from workers.dreambooth.subjects import TUNING_SUBJECTS, subject_photos

    subject = TUNING_SUBJECTS[0]
    run = work / "diffusers"
    subject_photos(subject, 4, run / "photos")
    (run / "class").mkdir(parents=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable, str(SHIMS / "run_reference.py"), str(script), "--pretrained_model_name_or_path", str(model),
        "--instance_data_dir", str(run / "photos"), "--class_data_dir", str(run / "class"),
        "--output_dir", str(run / "out"), "--with_prior_preservation", "--prior_loss_weight", "1.0",
        "--instance_prompt", f"a sks {subject.class_noun}", "--class_prompt", f"a {subject.class_noun}",
        "--resolution", "64", "--train_batch_size", "1", "--sample_batch_size", "4",
        "--learning_rate", "2e-4", "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
        "--num_class_images", str(class_images), "--max_train_steps", str(steps), "--train_text_encoder",
        "--seed", "0", "--mixed_precision", "no", "--checkpointing_steps", str(steps + 1),
    ]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    total = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"diffusers' script failed:\n{out.stderr[-3000:]}")
    return {"total_s": total, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def child(variant: str, model: Path, work: Path, steps: int, class_images: int) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    fn = naive if variant == "naive" else ours
    result = fn(model, work, steps, class_images)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def run_variant(variant: str, args, work: Path) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--work", str(work), "--model", str(args.model),
               "--steps", str(args.steps), "--class-images", str(args.class_images)]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def drift(args) -> None:
    """What prior preservation prevents: the same fine-tune with it on and off, scored by the
    subject eval (language drift = share of plain class-prompt pictures showing the subject).
    Uses the bullseye tuning subject, which the bundled VAE can draw."""
    from workers.dreambooth.evaluate import evaluate_subjects
    from workers.dreambooth.subjects import TUNING_SUBJECTS

    subject = [s for s in TUNING_SUBJECTS if s.name == "bullseye-circle"]
    print(f"language drift, {args.steps} steps, subject {subject[0].name}, model {args.model.name}")
    for preservation in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            scores = evaluate_subjects(args.model, Path(tmp), subjects=subject, steps=args.steps,
                                       num_class_images=args.class_images, prior_preservation=preservation)["mean"]
        print(f"prior preservation {'on ' if preservation else 'off'}: " + "  ".join(f"{k}={v}" for k, v in scores.items()),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="DreamBooth fine-tune benchmark")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shapes-v1")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--class-images", type=int, default=50)
    parser.add_argument("--drift", action="store_true",
                        help="instead: language drift with and without prior preservation (a tuning subject)")
    parser.add_argument("--diffusers-script", type=Path,
                        help="diffusers' examples/dreambooth/train_dreambooth.py, run on the same work as a reference")
    parser.add_argument("--child")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.work, args.steps, args.class_images)
    if args.drift:
        return drift(args)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.diffusers_script:  # first, so that the largest child's peak memory so far is its own
            results["diffusers script"] = diffusers_script(args.diffusers_script.resolve(), args.model, work,
                                                           args.steps, args.class_images)
        results["naive (baseline)"] = run_variant("naive", args, work)
        results["ours, cold bank"] = run_variant("ours", args, work)
        results["ours, warm bank"] = run_variant("ours", args, work)
    base = results["naive (baseline)"]["total_s"]
    reference = results.get("diffusers script", {}).get("total_s")
    print(f"DreamBooth, {args.steps} steps, prior preservation with {args.class_images} class images, "
          f"text encoder trained, 1+1 pictures per step, model {args.model.name}")
    print(f"{'variant':<20}{'total s':>9}{'vs naive':>10}{'vs diffusers':>14}{'peak MB':>9}")
    for name, r in results.items():
        versus = f"{r['total_s'] / reference:>13.2f}x" if reference else f"{'-':>14}"
        print(f"{name:<20}{r['total_s']:>9.1f}{r['total_s'] / base:>9.2f}x{versus}{r['peak_rss_mb']:>9.0f}")


if __name__ == "__main__":
    main()
