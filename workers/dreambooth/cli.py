"""`imagebooth finetune`: a DreamBooth fine-tune from the command line, with a progress bar."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workers/shapes/train.py


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imagebooth finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="3-5 photos of the subject")
    parser.add_argument("--class-noun", required=True, help="what the subject is: circle, dog, ...")
    parser.add_argument("--token", help="identifier for prompts (default: the base model's first rare token)")
    parser.add_argument("--base-model", type=Path, help="diffusers folder (default: the bundled model)")
    parser.add_argument("--config", type=Path, help="YAML overriding the base model's preset")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--method", choices=("full", "lora"))
    parser.add_argument("--no-prior-preservation", action="store_true")
    parser.add_argument("--devices", type=int)
    parser.add_argument("--strategy")
    parser.add_argument("--resume", type=Path, help="work folder of an interrupted run to continue")
    parser.add_argument("--out", type=Path, required=True, help="the personal model folder to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from tqdm import tqdm

    from app.config import get_settings
    from app.personalization.tokens import pick_token
    from workers.dreambooth.config import load_config
    from workers.dreambooth.train import FinetuneJob, Hooks, run_finetune

    args = parse_args(argv)
    if not 3 <= len(args.images) <= 5:
        raise SystemExit(f"give 3 to 5 photos of the subject (got {len(args.images)})")
    settings = get_settings()
    base = args.base_model or Path(settings.model_path)
    config = load_config(base, args.config, steps=args.steps, method=args.method, devices=args.devices,
                         strategy=args.strategy,
                         prior_preservation=False if args.no_prior_preservation else None)
    token = args.token or pick_token(base, set())
    work = args.resume or args.out.with_name(args.out.name + ".work")
    job = FinetuneJob(images=args.images, class_noun=args.class_noun, token=token, base_model=base,
                      out_dir=args.out, work_dir=work, class_bank=Path(settings.data_dir) / "class-bank", config=config)
    bar = tqdm(total=config.steps, desc="fine-tune", unit="step")

    def progress(step: int, total: int) -> None:
        bar.update(step - bar.n)

    card = run_finetune(job, Hooks(on_phase=lambda phase: bar.set_postfix_str(phase), on_progress=progress))
    bar.close()
    print(f'done: "{token}" is your subject\'s token; try: "a {token} {args.class_noun} on a red background"')
    print(f"model: {args.out}  logs: tensorboard --logdir {work}")
    return card


if __name__ == "__main__":  # multi-device runs re-execute this module in each process
    main()
