"""Best step against last step, on the tuning subjects (never the eval's).

For each tuning subject: one fine-tune with the base model's preset (scoring its checkpoints,
workers/dreambooth/best_step.py); the chosen step is what it exports. The last step's weights
are rebuilt from the run's last checkpoint (same run, so same trajectory), and both models are
scored by the subject eval (workers.dreambooth.evaluate.score_model: its own prompts and seeds,
read back knowing the subject's drawing), which the checkpoint scores never saw.

    python bench/best_step.py --model models/shapes-v1 [--steps 800] [--subjects 4] [--skip 0] [--method full]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEYS = ("subject_fidelity", "background_fidelity", "position_fidelity", "language_drift")


def last_step_model(base: Path, work_dir: Path, out: Path, method: str) -> Path:
    """The personal model folder of the run's last step, from its last checkpoint."""
    import torch

    state = torch.load(work_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    if method == "lora":
        raise SystemExit("bench/best_step.py: --method lora is not rebuilt from checkpoints yet; use full")
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    for part, model_class in (("unet", UNet2DConditionModel), ("text_encoder", CLIPTextModel)):
        weights = {key.removeprefix(f"{part}."): value for key, value in state.items() if key.startswith(f"{part}.")}
        if not weights:
            continue
        module = model_class.from_pretrained(base / part, local_files_only=True)
        module.load_state_dict(weights, strict=False)
        module.save_pretrained(str(out / part), safe_serialization=True)
    return out


def run_subject(base: Path, work: Path, subject, overrides: dict) -> dict:
    from workers.dreambooth.config import load_config
    from workers.dreambooth.evaluate import score_model
    from workers.dreambooth.subjects import subject_photos
    from workers.dreambooth.train import FinetuneJob, run_finetune

    folder = work / subject.name
    config = load_config(base, **overrides)
    job = FinetuneJob(images=subject_photos(subject, 4, folder / "photos", seed=7), class_noun=subject.class_noun,
                      token="sks", base_model=base, out_dir=folder / "chosen", work_dir=folder / "work",
                      class_bank=work / "class-bank", config=config)
    checkpoints = run_finetune(job)["checkpoints"]
    chosen = score_model(base, job.out_dir, "sks", subject)
    last = chosen if checkpoints["chosen_step"] == config.steps else score_model(
        base, last_step_model(base, job.work_dir, folder / "last", config.method), "sks", subject)
    return {"chosen_step": checkpoints["chosen_step"], "chosen": chosen, "last": last,
            "checkpoints": checkpoints["checkpoints"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shapes-v1")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--skip", type=int, default=0, help="tuning subjects to leave out from the start")
    parser.add_argument("--method", choices=("full", "lora"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from workers.dreambooth.subjects import TUNING_SUBJECTS

    overrides = {"steps": args.steps, "method": args.method}
    results = {}
    with tempfile.TemporaryDirectory(prefix="imagebooth-bench-best-") as work:
        for subject in TUNING_SUBJECTS[args.skip: args.subjects]:
            results[subject.name] = result = run_subject(args.model.resolve(), Path(work), subject, overrides)
            steps = ", ".join(f"{e['step']}: " + " ".join(f"{k}={v:.3g}" for k, v in e["scores"].items())
                              for e in result["checkpoints"])
            print(f"{subject.name}: chosen step {result['chosen_step']}  [{steps}]", flush=True)
            for label in ("chosen", "last"):
                print(f"  {label:<7}" + "  ".join(f"{k}={result[label][k]:.3f}" for k in KEYS), flush=True)
    for label in ("chosen", "last"):
        mean = {k: sum(r[label][k] for r in results.values()) / len(results) for k in KEYS}
        print(f"mean {label:<7}" + "  ".join(f"{k}={v:.3f}" for k, v in mean.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
