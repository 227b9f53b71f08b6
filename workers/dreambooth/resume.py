"""What makes a resumed fine-tune continue exactly as an uninterrupted one would.

A checkpoint (Lightning's, written every `checkpoint_every` steps) holds only what trains -
the LoRA weights or the trained parts (module.on_save_checkpoint) with their optimizer and
learning-rate schedule state - plus the two things Lightning does not keep:
- the data order: how many batches were consumed (DreamBoothData.state_dict), so the run goes
  on with the next pair instead of starting the epoch over; every pair and its prompts are a
  function of their index, so that is the whole of it;
- the random states (RandomStates below): torch's (noise, timesteps, dropout), Python's and
  numpy's, taken when the checkpoint is written and put back before the next step runs.
Anything that draws random numbers between steps (scoring checkpoints, best_step.py) does so
inside `torch.random.fork_rng`, so it never shifts what training draws.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RandomStates(Callback):
    def __init__(self) -> None:
        self._to_restore: dict | None = None

    def state_dict(self) -> dict:
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": _numpy_state(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        # kept until the first step: restoring the module and data draws nothing, but the model
        # was built (LoRA initialised) after seeding, and that must not decide the next noise
        self._to_restore = state_dict

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._to_restore is None:
            return
        state, self._to_restore = self._to_restore, None
        torch.set_rng_state(state["torch"])
        if state["cuda"]:
            torch.cuda.set_rng_state_all(state["cuda"])
        random.setstate(state["python"])
        kind, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))


def _numpy_state() -> tuple:
    """numpy's state with its key array as a tensor: Lightning loads checkpoints weights-only,
    which admits tensors and plain values but no numpy arrays."""
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss), float(cached)
