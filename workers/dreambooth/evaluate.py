"""`imagebooth eval subject`: does a fine-tune learn the subject without forgetting the class?

For each of the project's own eval subjects (drawn, never used for tuning the preset):
fine-tune on 4 photos, then generate and read the pictures back from pixels:
- subject fidelity: "a <token> <class> ... on a <bg> background" shows the subject (its
  colour and its pattern), the analogue of the DreamBooth paper's DINO / CLIP-I;
- prompt fidelity: those pictures have the asked background and position (CLIP-T);
- language drift: "a <class> on a <bg> background" shows the subject's pattern (PRES).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from workers.dreambooth.subjects import EVAL_SUBJECTS, TestSubject, draw_subject, subject_photos
from workers.shapes.reader import palette_labels, read_picture
from workers.shapes.world import COLORS, PALETTE, POSITION_PHRASES

CHECK_BACKGROUNDS = ("red", "blue", "white", "black", "green")
CHECK_POSITIONS = ("center", "left", "right")
SEEDS = (11, 12)


def pattern_share(image, subject: TestSubject) -> tuple[float, str | None]:
    """Share of the pattern colour among the non-background pixels, and the main colour."""
    reading = read_picture(image)
    labels = palette_labels(np.asarray(image.convert("RGB")))
    background = COLORS.index(reading.background) if reading.background else -1
    region = labels[labels != background]
    if region.size == 0:
        return 0.0, None
    return float((region == COLORS.index(subject.pattern_color)).mean()), reading.color


def photo_signature(photos, class_noun: str) -> tuple[TestSubject | None, float, set[str]]:
    """A user's subject as its photos show it: the main colour the reader finds, the commonest
    other colour inside the shape (the pattern), the pattern's mean share (the reference
    shows_subject compares with) and the backgrounds the photos have. None: no colour found."""
    readings = [read_picture(photo) for photo in photos]
    colors = Counter(reading.color for reading in readings if reading.color)
    if not colors:
        return None, 0.0, set()
    color = colors.most_common(1)[0][0]
    inside: Counter[int] = Counter()
    for photo, reading in zip(photos, readings):
        pixels = np.asarray(photo.convert("RGB"), dtype=np.float32)
        labels = palette_labels(pixels)
        # only pixels of a palette colour itself: an edge between two colours blends into a third
        pure = np.abs(pixels - np.array([PALETTE[c] for c in COLORS], np.float32)[labels]).max(-1) < 24
        background = COLORS.index(reading.background) if reading.background else -1
        inside.update(labels[pure & (labels != background) & (labels != COLORS.index(color))].ravel().tolist())
    pattern = COLORS[inside.most_common(1)[0][0]] if inside else color
    subject = TestSubject("photos", class_noun, color, pattern, "unknown")
    reference = float(np.mean([pattern_share(photo, subject)[0] for photo in photos]))
    return subject, reference, {reading.background for reading in readings if reading.background}


def reference_share(subject: TestSubject) -> float:
    background = next(c for c in COLORS if c not in (subject.color, subject.pattern_color))
    return pattern_share(draw_subject(subject, background), subject)[0]


def shows_subject(image, subject: TestSubject, reference: float) -> bool:
    share, main = pattern_share(image, subject)
    return main == subject.color and share >= 0.4 * reference


def subject_prompts(token: str, subject: TestSubject) -> list[tuple[str, str, str]]:
    out = []
    for bg in CHECK_BACKGROUNDS:
        if bg in (subject.color, subject.pattern_color):
            continue
        for position in CHECK_POSITIONS:
            out.append((f"a {token} {subject.class_noun} {POSITION_PHRASES[position]} on a {bg} background", bg, position))
    return out


def score_model(base: Path, model: Path, token: str, subject: TestSubject) -> dict:
    from workers.engine.inputs import GenerationRequest
    from workers.engine.loading import ModelRef
    from workers.engine.sampling import generate_images

    ref = ModelRef(base, model)
    reference = reference_share(subject)
    hits = bg_ok = pos_ok = total = 0
    for prompt, bg, position in subject_prompts(token, subject):
        result = generate_images(ref, GenerationRequest(prompt=prompt, n=len(SEEDS), seeds=list(SEEDS)))
        for image in result.images:
            reading = read_picture(image)
            hits += shows_subject(image, subject, reference)
            bg_ok += reading.background == bg
            pos_ok += reading.position == position
            total += 1
    drift = drift_total = 0
    for bg in CHECK_BACKGROUNDS:
        if bg == subject.color:
            continue
        prompt = f"a {subject.class_noun} on a {bg} background"
        for image in generate_images(ref, GenerationRequest(prompt=prompt, n=len(SEEDS), seeds=list(SEEDS))).images:
            drift += shows_subject(image, subject, reference)
            drift_total += 1
    return {"subject_fidelity": hits / total, "background_fidelity": bg_ok / total,
            "position_fidelity": pos_ok / total, "language_drift": drift / drift_total}


def evaluate_subjects(base: Path, work: Path, subjects=EVAL_SUBJECTS, **overrides) -> dict:
    from app.personalization.tokens import pick_token
    from workers.dreambooth.config import load_config
    from workers.dreambooth.train import FinetuneJob, run_finetune

    results = {}
    for subject in subjects:
        photos = subject_photos(subject, 4, work / subject.name / "photos", seed=7)
        token = pick_token(base, set())
        job = FinetuneJob(images=photos, class_noun=subject.class_noun, token=token, base_model=base,
                          out_dir=work / subject.name / "model", work_dir=work / subject.name / "work",
                          class_bank=work / "class-bank", config=load_config(base, **overrides))
        card = run_finetune(job)
        results[subject.name] = {**score_model(base, job.out_dir, token, subject), **card["timings"]}
    keys = ("subject_fidelity", "background_fidelity", "position_fidelity", "language_drift")
    results["mean"] = {k: round(sum(r[k] for r in results.values()) / len(subjects), 3) for k in keys}
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="imagebooth eval subject", description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", type=Path)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--no-prior-preservation", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from app.config import get_settings

    base = args.base_model or Path(get_settings().model_path)
    overrides = {"steps": args.steps, "prior_preservation": False if args.no_prior_preservation else None}
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate_subjects(base, Path(tmp), **overrides)
    for name, scores in results.items():
        print(f"{name:<18} " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results
