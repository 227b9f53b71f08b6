"""Exact resume (same loss at every step, same weights) and the best step, on the tiny model."""
import json

import pytest
import torch
from safetensors.torch import load_file

from workers.dreambooth.best_step import choose
from workers.dreambooth.config import load_config
from workers.dreambooth.subjects import EVAL_SUBJECTS, TUNING_SUBJECTS, subject_photos
from workers.dreambooth.train import FinetuneJob, Hooks, run_finetune


class Killed(Exception):
    """Stands for the worker dying mid-run: nothing after it runs, only the checkpoints stay."""


def job_in(base, photos, folder, **overrides) -> FinetuneJob:
    settings = {"steps": 8, "num_class_images": 2, "class_image_steps": 2, "checkpoint_every": 3,
                "holdout_photos": 1, "validation_images": 1, "validation_steps": 2, **overrides}
    return FinetuneJob(images=photos, class_noun="circle", token="sks", base_model=base, out_dir=folder / "model",
                       work_dir=folder / "work", class_bank=folder.parent / "bank", config=load_config(base, **settings))


def losses_of(job: FinetuneJob, kill_at: int | None = None) -> dict[int, float]:
    losses: dict[int, float] = {}

    def progress(step: int, total: int) -> None:
        if step == kill_at:
            raise Killed(step)

    hooks = Hooks(on_loss=losses.__setitem__, on_progress=progress)
    if kill_at is None:
        run_finetune(job, hooks)
    else:
        with pytest.raises(Killed):
            run_finetune(job, hooks)
    return losses


def exported(folder) -> dict[str, torch.Tensor]:
    return {f"{f.parent.name}/{key}": value for f in sorted((folder / "model").rglob("*.safetensors"))
            for key, value in load_file(f).items()}


@pytest.fixture
def four_photos(tmp_path):
    return subject_photos(EVAL_SUBJECTS[0], 4, tmp_path / "photos")


# the preset's 8-bit moments on both methods, and fp32 AdamW
@pytest.mark.parametrize(("method", "optimizer"), [("lora", "adamw-8bit"), ("full", "adamw-8bit"), ("lora", "adamw")])
def test_a_run_killed_at_step_5_resumes_with_the_same_losses_and_weights(tiny_base, four_photos, tmp_path, method,
                                                                          optimizer):
    whole = losses_of(job_in(tiny_base, four_photos, tmp_path / "whole", method=method, optimizer=optimizer))
    interrupted = job_in(tiny_base, four_photos, tmp_path / "interrupted", method=method, optimizer=optimizer)
    before = losses_of(interrupted, kill_at=5)  # the last checkpoint is step 3's
    checkpoint = torch.load(interrupted.work_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3 and checkpoint["DreamBoothData"] == {"batches_done": 3}
    after = losses_of(interrupted)
    assert min(after) == 4  # went on from the checkpoint
    assert sorted(whole) == list(range(1, 9))
    assert all(before[step] == whole[step] for step in before)  # bitwise: same floats
    assert all(after[step] == whole[step] for step in after), (after, whole)
    one, other = exported(tmp_path / "whole"), exported(tmp_path / "interrupted")
    assert one.keys() == other.keys() and all(torch.equal(one[key], other[key]) for key in one)


def test_checkpoints_hold_only_what_trains(tiny_base, four_photos, tmp_path):
    job = job_in(tiny_base, four_photos, tmp_path / "run", method="lora", steps=3)
    run_finetune(job)
    checkpoint = torch.load(job.work_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["state_dict"] and all("lora" in key for key in checkpoint["state_dict"])
    assert "DreamBoothData" in checkpoint and any("RandomStates" in key for key in checkpoint["callbacks"])
    [optimizer] = checkpoint["optimizer_states"]
    assert len(optimizer["state"]) == len(checkpoint["state_dict"])  # AdamW's moments of those weights only
    # the preset's optimizer keeps them in 8 bits
    assert {state["exp_avg"].dtype for state in optimizer["state"].values()} == {torch.int8}
    assert {state["exp_avg_root"].dtype for state in optimizer["state"].values()} == {torch.uint8}
    frozen = sum(f.stat().st_size for part in ("unet", "text_encoder") for f in (tiny_base / part).glob("*.safetensors"))
    assert (job.work_dir / "checkpoints" / "last.ckpt").stat().st_size < frozen / 2


def test_every_checkpoint_is_scored_and_the_chosen_one_is_exported(tiny_base, four_photos, tmp_path):
    seen: list[dict] = []
    job = job_in(tiny_base, four_photos, tmp_path / "run", method="full", steps=6, checkpoint_every=2)
    card = run_finetune(job, Hooks(on_checkpoints=seen.append))
    checkpoints = card["checkpoints"]
    assert [entry["step"] for entry in checkpoints["checkpoints"]] == [2, 4, 6]
    assert all({"heldout_loss", "prior_drift"} <= set(entry["scores"]) for entry in checkpoints["checkpoints"])
    assert seen[-1] == checkpoints and len(seen) == 3
    chosen = choose(checkpoints["checkpoints"], 6).step
    assert checkpoints["chosen_step"] == chosen and "heldout_loss" in checkpoints["rule"]
    best = torch.load(job.work_dir / "scores" / "best.pt", weights_only=True)
    assert best["step"] == chosen
    unet = load_file(job.out_dir / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(unet[name.removeprefix("unet.")], value)
               for name, value in best["weights"].items() if name.startswith("unet."))
    saved = json.loads((job.out_dir / "imagebooth_model.json").read_text())
    assert saved["checkpoints"]["chosen_step"] == chosen


def test_the_rule_prefers_the_reader_then_the_loss_and_ties_go_to_the_later_step():
    reader = [{"step": 100, "scores": {"subject_fidelity": 1.0, "language_drift": 0.0, "heldout_loss": 0.1}},
              {"step": 200, "scores": {"subject_fidelity": 1.0, "language_drift": 0.5, "heldout_loss": 0.01}},
              {"step": 300, "scores": {"subject_fidelity": 1.0, "language_drift": 0.0, "heldout_loss": 0.2}}]
    assert choose(reader, 300).step == 300 and choose(reader, 300).rule == "reader"
    loss = [{"step": 1, "scores": {"heldout_loss": 0.3, "prior_drift": 0.1}},
            {"step": 2, "scores": {"heldout_loss": 0.2, "prior_drift": 0.1}},
            {"step": 3, "scores": {"heldout_loss": 0.2, "prior_drift": 0.3}}]
    assert choose(loss, 3).step == 2 and choose(loss, 3).rule == "loss"
    assert choose([{"step": 5, "scores": {"prior_drift": 0.1}}], 9).step == 9  # nothing held out: the last


def test_the_reader_scores_held_out_views_of_the_photos_subject(tiny_base, tmp_path):
    from workers.dreambooth.data import load_picture
    from workers.dreambooth.evaluate import photo_signature

    for subject in (*TUNING_SUBJECTS, *EVAL_SUBJECTS):
        photos = [load_picture(p, 64) for p in subject_photos(subject, 4, tmp_path / subject.name)]
        found, reference, backgrounds = photo_signature(photos, subject.class_noun)
        assert (found.color, found.pattern_color) == (subject.color, subject.pattern_color), subject.name
        assert reference > 0 and backgrounds and subject.color not in backgrounds
    photos = subject_photos(EVAL_SUBJECTS[0], 4, tmp_path / "run-photos")
    card = run_finetune(job_in(tiny_base, photos, tmp_path / "run", steps=2, checkpoint_every=2,
                               checkpoint_scoring="reader"))
    [entry] = card["checkpoints"]["checkpoints"]
    assert 0 <= entry["scores"]["subject_fidelity"] <= 1 and 0 <= entry["scores"]["language_drift"] <= 1
    assert "subject_fidelity" in card["checkpoints"]["rule"]


def test_weights_and_biases_logs_offline_into_the_work_folder(tiny_base, four_photos, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    job = job_in(tiny_base, four_photos, tmp_path / "run", steps=2, tracker="wandb", checkpoint_scoring="off")
    run_finetune(job)
    runs = list((job.work_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert not (job.work_dir / "tensorboard").exists()
