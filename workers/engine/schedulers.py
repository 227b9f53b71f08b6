"""Samplers by their AUTOMATIC1111 names, built from the model folder's scheduler config.

The model folder's `scheduler/scheduler_config.json` describes how the model was trained
(beta schedule, prediction type epsilon / v_prediction, timestep spacing, steps offset);
those must be honoured or a v-prediction model draws noise. The sampler only decides how to
walk that schedule, so each entry below sets the solver's own knobs and nothing else, and
`from_config` fills the rest from the folder. The names are A1111's so that the PNG
`parameters` chunk reads the same as one written by its web UI. Only deterministic samplers
are listed, plus LCM, whose fresh noise at each step comes from the per-image generators
the sampling loop threads through `step` (so image k of a batch still equals its seed alone);
ancestral ones ("Euler a") would need the same and are not listed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SamplerSpec:
    """A scheduler class (by diffusers name) plus the solver settings that define it."""

    class_name: str
    solver_kwargs: dict[str, Any] = field(default_factory=dict)
    # PNDM repeats one timestep on purpose (its own counter copes); the others look their
    # step up by timestep value and break on repeats.
    repeats_timesteps: bool = False
    # draws noise in `step`: the loop passes one generator per image
    stochastic: bool = False


SAMPLERS: dict[str, SamplerSpec] = {
    # Second-order multistep: one UNet call per step and good images in 8-10 steps, which is
    # what makes the fast profile fast (the stock default PNDM needs ~50).
    "DPM++ 2M": SamplerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "DPM++ 2M Karras": SamplerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "UniPC": SamplerSpec("UniPCMultistepScheduler", {"solver_order": 2, "use_karras_sigmas": False}),
    "Euler": SamplerSpec("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "DDIM": SamplerSpec("DDIMScheduler"),
    # Consistency models (an LCM-distilled student): a few steps, no guidance needed.
    "LCM": SamplerSpec("LCMScheduler", stochastic=True),
    # Stock StableDiffusionPipeline's default for SD 1.x folders; kept for comparisons.
    "PLMS": SamplerSpec("PNDMScheduler", {"skip_prk_steps": True}, repeats_timesteps=True),
}


def needs_generators(sampler: str) -> bool:
    return SAMPLERS[sampler].stochastic


# (config object, sampler, steps, device) -> a scheduler with its timesteps set, never stepped
_PROTOTYPES: dict[tuple, tuple[Any, Any]] = {}
_MAX_PROTOTYPES = 64


def make_scheduler(model_scheduler_config: Any, sampler: str, steps: int | None = None, device=None):
    """A fresh scheduler for one request: `sampler`'s solver on the model's own schedule.

    Schedulers carry per-run state (step index, previous model outputs), so every
    generation gets its own. Building one from a config and setting its timesteps cost
    1.2 ms (measured, UniPC), a twentieth of a whole 4-step picture on the compiled
    backend, so each combination is built once and later requests get a copy (0.16 ms).
    """
    key = (id(model_scheduler_config), sampler, steps, str(device))
    cached = _PROTOTYPES.get(key)
    if cached is None or cached[0] is not model_scheduler_config:  # an id reused by a new config
        if len(_PROTOTYPES) >= _MAX_PROTOTYPES:
            _PROTOTYPES.clear()
        cached = (model_scheduler_config, _build_scheduler(model_scheduler_config, sampler, steps, device))
        _PROTOTYPES[key] = cached
    return copy.deepcopy(cached[1])


def _build_scheduler(model_scheduler_config: Any, sampler: str, steps: int | None, device):
    import diffusers

    spec = SAMPLERS.get(sampler)
    if spec is None:
        known = ", ".join(sorted(SAMPLERS))
        raise ValueError(f"sampler: unknown sampler {sampler!r} (known: {known})")
    scheduler_class = getattr(diffusers, spec.class_name)
    scheduler = scheduler_class.from_config(model_scheduler_config, **spec.solver_kwargs)
    if steps is not None:
        scheduler.set_timesteps(steps, device=device)
        if not spec.repeats_timesteps:
            _check_timesteps(scheduler, sampler, steps)
    return scheduler


def _check_timesteps(scheduler, sampler: str, steps: int) -> None:
    # Karras sigmas on a cosine ("squaredcos_cap_v2") schedule, as the bundled model uses,
    # bunch several steps onto the same timestep (measured: 6 steps -> 998, 998, 998, ...);
    # diffusers' step-index lookup then runs off the end of its sigmas (IndexError mid-run).
    timesteps = scheduler.timesteps.tolist()
    if len(set(timesteps)) != len(timesteps):
        raise ValueError(
            f"sampler: {sampler} repeats timesteps on this model's noise schedule at {steps} steps; "
            "use DPM++ 2M or UniPC"
        )
