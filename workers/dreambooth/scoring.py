"""Scores of a fine-tune's weights at one checkpoint, on data it never trained on.

Any model (LossProbe):
- `heldout_loss`: the denoising loss on instance photos held out of training (leave-one-out:
  `holdout_photos` of the subject's photos are never trained on), at fixed timesteps and noise;
- `prior_drift`: how far the model's prediction for the class prompt ("a dog") has moved from
  the base model's on the same class pictures, timesteps and noise (language drift).
The bundled model (ReaderProbe): pictures drawn at held-out views of the subject (backgrounds
none of its photos has, positions off the centre) and plain class prompts, read back from
pixels by the subject reader (evaluate.shows_subject): `subject_fidelity` and `language_drift`.
Every score uses its own generators (and runs under fork_rng in the caller), so scoring never
changes what training draws next.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workers.dreambooth.conditioning import token_ids

PROBE_TIMESTEPS = (100, 300, 500, 700, 900)
PROBE_SEED = 4321
MAX_DRIFT_PICTURES = 4


class LossProbe:
    """Fixed noisy inputs, built once, for the held-out loss and the drift from the base."""

    def __init__(self, module, tokenizers, heldout: torch.Tensor | None, klass: torch.Tensor,
                 instance_prompt: str, class_prompt: str):
        self.module = module
        self.heldout = None if heldout is None or not len(heldout) else self._inputs(heldout)
        self.heldout_ids = token_ids(tokenizers, [instance_prompt] * len(self.heldout[0])) if self.heldout else None
        self.klass = self._inputs(klass[:MAX_DRIFT_PICTURES])
        self.class_ids = token_ids(tokenizers, [class_prompt] * len(self.klass[0]))
        self.base_prediction: torch.Tensor | None = None

    @staticmethod
    def _inputs(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each latent at each probe timestep, with noise from a fixed generator."""
        generator = torch.Generator().manual_seed(PROBE_SEED)
        repeated = latents.repeat_interleave(len(PROBE_TIMESTEPS), dim=0)
        noise = torch.randn(repeated.shape, generator=generator)
        timesteps = torch.tensor(PROBE_TIMESTEPS * len(latents))
        return repeated, noise, timesteps

    def _predict(self, inputs, ids) -> tuple[torch.Tensor, torch.Tensor]:
        latents, noise, timesteps = (x.to(self.module.device) for x in inputs)
        scheduler = self.module.noise_scheduler
        noisy = scheduler.add_noise(latents, noise, timesteps)
        prediction = self.module.predict(noisy, timesteps, ids).float()
        return prediction, self.module._target(latents, noise, timesteps).float()

    def remember_base(self, prediction: torch.Tensor | None = None) -> torch.Tensor:
        """The base model's class prediction: measured now (weights untrained) or as saved."""
        self.base_prediction = prediction if prediction is not None else self._predict(self.klass, self.class_ids)[0]
        return self.base_prediction

    def scores(self) -> dict[str, float]:
        out = {}
        if self.heldout is not None:
            prediction, target = self._predict(self.heldout, self.heldout_ids)
            out["heldout_loss"] = F.mse_loss(prediction, target).item()
        if self.base_prediction is not None:
            prediction = self._predict(self.klass, self.class_ids)[0]
            out["prior_drift"] = F.mse_loss(prediction, self.base_prediction.to(prediction.device)).item()
        return out


@dataclass(frozen=True)
class HeldOutView:
    prompt: str
    subject: bool  # True: the subject is asked for; False: a plain class prompt (drift)


class ReaderProbe:
    """The bundled model's subject reader on pictures of views the photos do not show."""

    SEEDS = (21, 22)

    def __init__(self, module, tokenizers, vae, base_model, photos, token: str, class_noun: str):
        from workers.dreambooth.evaluate import photo_signature
        from workers.dreambooth.export import SamplingPipeline

        self.pipe = SamplingPipeline(base_model, vae, module, tokenizers)
        self.subject, self.reference, seen_backgrounds = photo_signature(photos, class_noun)
        self.views = held_out_views(token, class_noun, self.subject, seen_backgrounds) if self.subject else []

    def scores(self) -> dict[str, float]:
        from workers.dreambooth.evaluate import shows_subject

        if self.subject is None:  # the reader found no subject in the photos: nothing to compare with
            return {}
        prompts = [view.prompt for view in self.views for _ in self.SEEDS]
        generators = [torch.Generator().manual_seed(seed) for _ in self.views for seed in self.SEEDS]
        pictures = self.pipe.draw(prompts, generators)
        hits: dict[bool, list[bool]] = {True: [], False: []}
        for index, picture in enumerate(pictures):
            view = self.views[index // len(self.SEEDS)]
            hits[view.subject].append(shows_subject(picture, self.subject, self.reference))
        return {"subject_fidelity": sum(hits[True]) / len(hits[True]),
                "language_drift": sum(hits[False]) / len(hits[False])}


def held_out_views(token: str, class_noun: str, subject, seen_backgrounds: set[str]) -> list[HeldOutView]:
    from workers.dreambooth.evaluate import CHECK_BACKGROUNDS
    from workers.shapes.world import POSITION_PHRASES

    unseen = [bg for bg in CHECK_BACKGROUNDS if bg not in seen_backgrounds | {subject.color, subject.pattern_color}]
    backgrounds = (unseen or [bg for bg in CHECK_BACKGROUNDS if bg not in (subject.color, subject.pattern_color)])[:2]
    views = [HeldOutView(f"a {token} {class_noun} {POSITION_PHRASES[position]} on a {bg} background", True)
             for bg in backgrounds for position in ("left", "right")]
    views += [HeldOutView(f"a {class_noun} on a {bg} background", False) for bg in backgrounds]
    return views
