"""`imagebooth eval prompts`: prompt fidelity of a model in the shapes world.

Draws N random scenes (fixed seed), prompts the model with the caption that states all five
attributes, reads each generated picture back with the pixel reader, and prints per-attribute
accuracy, their mean ("attribute accuracy") and the share with all five right.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from workers.shapes.captions import canonical_caption
from workers.shapes.world import ATTRIBUTES, random_scene

EVAL_SEED = 1234


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imagebooth eval prompts", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="diffusers folder (default: the bundled model)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the profile's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--n", type=int, default=200, help="number of prompts")
    parser.add_argument("--profile", default="fast", choices=("fast", "quality"))
    parser.add_argument("--sampler", help="override the profile's sampler (A1111 name)")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    return parser.parse_args(argv)


def eval_cases(count: int, seed: int = EVAL_SEED) -> list[tuple[str, dict, int]]:
    """(prompt, true attributes, image seed) triples; the same list every run."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        scene = random_scene(rng, jitter=False)
        cases.append((canonical_caption(scene), scene.attributes(), seed * 1000 + i))
    return cases


def score(readings: list[dict], truths: list[dict]) -> dict:
    per_attribute = {a: sum(r[a] == t[a] for r, t in zip(readings, truths)) / len(truths) for a in ATTRIBUTES}
    all_five = sum(all(r[a] == t[a] for a in ATTRIBUTES) for r, t in zip(readings, truths)) / len(truths)
    return {
        "attribute_accuracy": round(sum(per_attribute.values()) / len(ATTRIBUTES), 4),
        "all_five": round(all_five, 4),
        **{a: round(v, 4) for a, v in per_attribute.items()},
    }


def evaluate(model: Path, count: int = 200, profile: str = "fast", steps: int | None = None,
             guidance: float | None = None, sampler: str | None = None) -> dict:
    from workers.engine.inputs import GenerationRequest
    from workers.engine.loading import ModelRef
    from workers.engine.sampling import generate_images
    from workers.shapes.reader import read_picture

    readings, truths, seconds = [], [], 0.0
    for prompt, truth, seed in eval_cases(count):
        request = GenerationRequest(prompt=prompt, n=1, steps=steps, guidance_scale=guidance,
                                    seeds=[seed], profile=profile, sampler=sampler)
        started = time.perf_counter()
        result = generate_images(ModelRef(model), request)
        seconds += time.perf_counter() - started
        readings.append(read_picture(result.images[0]).attributes())
        truths.append(truth)
    scores = score(readings, truths)
    scores.update({"prompts": count, "steps": result.steps, "guidance": result.guidance_scale,
                   "sampler": result.sampler, "seconds_per_picture": round(seconds / count, 4)})
    return scores


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    model = args.model
    if model is None:
        from app.config import get_settings

        model = Path(get_settings().model_path)
    scores = evaluate(model, args.n, args.profile, args.steps, args.guidance, args.sampler)
    print(f"prompt fidelity of {model} ({scores['prompts']} prompts, {scores['steps']} steps, "
          f"guidance {scores['guidance']}, {scores['sampler']}):")
    for key in ("attribute_accuracy", "all_five", *ATTRIBUTES, "seconds_per_picture"):
        print(f"  {key:<20} {scores[key]}")
    if args.json:
        args.json.write_text(json.dumps(scores, indent=2))
    return scores
