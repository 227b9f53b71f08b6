"""Best step: each checkpoint is scored (scoring.py) and the best one is what gets exported.

The rule (`choose`): on the bundled model, the most subject fidelity less language drift at
held-out views (the subject reader); on any other model, the least held-out denoising loss plus
drift of the class prediction from the base (both mean squared errors of the same prediction).
Ties go to the later step, so a fine-tune whose checkpoints all score alike exports its last
step, as before. Without any score (no held-out photo on a model without a reader) the last
step is chosen.

Scores and the best weights so far live in the work folder (`scores/`), written before the
checkpoint of the same step, so a resumed run keeps the scores of the steps before its kill.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

RULES = {
    "reader": "highest subject_fidelity - language_drift (subject reader, held-out views)",
    "loss": "lowest heldout_loss + prior_drift",
    "last": "the last step (no held-out score on this model)",
}


@dataclass(frozen=True)
class Choice:
    step: int
    rule: str


def choose(checkpoints: list[dict], final_step: int) -> Choice:
    def value(entry: dict) -> float | None:
        scores = entry["scores"]
        if "subject_fidelity" in scores:
            return scores["subject_fidelity"] - scores["language_drift"]
        if "heldout_loss" in scores:
            return -(scores["heldout_loss"] + scores.get("prior_drift", 0.0))
        return None

    valued = [(value(entry), entry["step"]) for entry in checkpoints]
    valued = [(v, step) for v, step in valued if v is not None]
    if not valued:
        return Choice(final_step, "last")
    best_step = max(valued)[1]  # equal values: the later step wins
    by_reader = any("subject_fidelity" in entry["scores"] for entry in checkpoints)
    return Choice(best_step, "reader" if by_reader else "loss")


class ScoreStore:
    """`scores/checkpoints.json` (every scored step) and `scores/best.pt` (its trained weights)."""

    def __init__(self, work_dir: Path):
        self.folder = Path(work_dir) / "scores"
        self.folder.mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, save) -> None:
        partial = self.folder / f"{name}.partial"
        save(partial)
        os.replace(partial, self.folder / name)

    def checkpoints(self) -> list[dict]:
        path = self.folder / "checkpoints.json"
        return json.loads(path.read_text()) if path.exists() else []

    def record(self, step: int, scores: dict[str, float]) -> list[dict]:
        entries = [entry for entry in self.checkpoints() if entry["step"] != step] + [{"step": step, "scores": scores}]
        entries.sort(key=lambda entry: entry["step"])
        self._write("checkpoints.json", lambda path: path.write_text(json.dumps(entries)))
        return entries

    def save_best(self, step: int, weights: dict[str, torch.Tensor]) -> None:
        self._write("best.pt", lambda path: torch.save({"step": step, "weights": weights}, path))

    def best(self) -> dict | None:
        path = self.folder / "best.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None

    def base_prediction(self) -> torch.Tensor | None:
        path = self.folder / "base_prediction.pt"
        return torch.load(path, weights_only=True) if path.exists() else None

    def save_base_prediction(self, prediction: torch.Tensor) -> None:
        self._write("base_prediction.pt", lambda path: torch.save(prediction.cpu(), path))


class CheckpointScorer(Callback):
    """Scores the weights at every checkpoint step and at the last, keeps the best's weights."""

    def __init__(self, store: ScoreStore, probes: list, every: int, total: int, on_scores=lambda summary: None):
        self.store, self.probes, self.every, self.total = store, probes, every, total
        self.on_scores = on_scores

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:  # only the first process scores (and writes the score files)
            return
        for probe in self.probes:
            if hasattr(probe, "remember_base"):
                self._remember_base(probe, pl_module, trainer.global_step)

    def _remember_base(self, probe, pl_module, step: int) -> None:
        saved = self.store.base_prediction()
        if saved is not None:
            probe.remember_base(saved)
        elif step == 0:  # the weights are still the base's
            with pl_module.inference():
                self.store.save_base_prediction(probe.remember_base())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if trainer.global_rank != 0 or not (step % self.every == 0 or step == self.total):
            return
        scores = self._score(pl_module)
        entries = self.store.record(step, scores)
        if choose(entries, step).step == step:
            self.store.save_best(step, trained_weights(pl_module))
        self.on_scores(summary(entries, self.total))

    def _score(self, pl_module) -> dict[str, float]:
        devices = [pl_module.device.index or 0] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), pl_module.inference():
            scores: dict[str, float] = {}
            for probe in self.probes:
                scores.update(probe.scores())
        return {name: round(value, 6) for name, value in scores.items()}


def trained_weights(pl_module) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().cpu().clone() for name, parameter in pl_module.named_parameters()
            if parameter.requires_grad}


def summary(entries: list[dict], final_step: int) -> dict:
    """What the fine-tune's status shows: each checkpoint's scores and the one chosen so far."""
    choice = choose(entries, final_step) if entries else None
    return {"checkpoints": entries, "chosen_step": choice.step if choice else None,
            "rule": RULES[choice.rule] if choice else None}


def load_best(pl_module, store: ScoreStore, chosen_step: int) -> None:
    """Put the chosen checkpoint's weights into the module (they are the module's own at the last step)."""
    best = store.best()
    if best is None or best["step"] != chosen_step:
        return
    missing = set(trained_weights(pl_module)) - set(best["weights"])
    if missing:
        raise ValueError(f"best step: saved weights lack {len(missing)} trained weights")
    with torch.no_grad():
        for name, parameter in pl_module.named_parameters():
            if name in best["weights"]:
                parameter.copy_(best["weights"][name])
