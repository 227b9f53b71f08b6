"""DreamBooth data: instance pictures and class pictures as cached latents, fresh prompts.

The VAE is frozen, so every picture is encoded once before training (the reference scripts
encode both pictures again at every step). Prompts are drawn per step with the same
wrappers users type ("a photo of a sks circle"), instance prompt "a <token> <class>",
class prompt "a <class>".
"""
from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageOps

from workers.dreambooth.conditioning import token_ids
from workers.shapes.captions import decorate, with_article


def instance_prompt(token: str, class_noun: str) -> str:
    return with_article(f"{token} {class_noun}")


def class_prompt(class_noun: str) -> str:
    return with_article(class_noun)


def load_picture(path: Path | str, resolution: int) -> Image.Image:
    """EXIF-rotated, RGB, centre-cropped to a square and resized to the model's size."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return image.resize((resolution, resolution), Image.Resampling.LANCZOS)


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).div(127.5).sub(1.0)


@torch.no_grad()
def encode_pictures(vae, images: list[Image.Image], batch: int = 32) -> torch.Tensor:
    """Scaled latents (the mode of the VAE's posterior) for each picture."""
    chunks = []
    for i in range(0, len(images), batch):
        pixels = to_tensor(images[i : i + batch]).to(vae.device, vae.dtype)
        chunks.append(vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor)
    return torch.cat(chunks).float().cpu()


class JointPairs(torch.utils.data.Dataset):
    """Item k: one instance latent and, with prior preservation, one class latent."""

    def __init__(self, instance: torch.Tensor, klass: torch.Tensor | None, length: int, seed: int):
        self.instance, self.klass, self.length, self.seed = instance, klass, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        rng = random.Random(self.seed * 1_000_003 + index)
        inst = self.instance[index % len(self.instance)]
        cls = self.klass[rng.randrange(len(self.klass))] if self.klass is not None else None
        return inst, cls, index


class PromptCollate:
    def __init__(self, tokenizers, token: str, class_noun: str, seed: int):
        self.tokenizers, self.token, self.class_noun, self.seed = tokenizers, token, class_noun, seed

    def _ids(self, prompts: list[str]) -> torch.Tensor:
        return token_ids(self.tokenizers, prompts)

    def __call__(self, items):
        rng = random.Random(self.seed + items[0][2])
        instance = torch.stack([item[0] for item in items])
        prompts = [decorate(instance_prompt(self.token, self.class_noun), rng) for _ in items]
        batch = {"instance": instance, "instance_ids": self._ids(prompts)}
        if items[0][1] is not None:
            batch["class"] = torch.stack([item[1] for item in items])
            batch["class_ids"] = self._ids([decorate(class_prompt(self.class_noun), rng) for _ in items])
        return batch


class ResumedOrder(torch.utils.data.Sampler):
    """Indices in order from `start`. Its length is the whole epoch's: a resumed Lightning loop
    counts the epoch's batches on from the restored step, so a shorter length would end the
    epoch early and start the order over."""

    def __init__(self, length: int, start: int):
        self.length, self.start = length, start

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        return iter(range(self.start, self.length))


class DreamBoothData(L.LightningDataModule):
    """The pairs in index order; a checkpoint records how many batches were consumed, and a
    resumed run continues from the next one (resume.py)."""

    def __init__(self, instance: torch.Tensor, klass: torch.Tensor | None, tokenizers, token: str,
                 class_noun: str, steps: int, batch_size: int, accumulate: int, seed: int):
        super().__init__()
        self.dataset = JointPairs(instance, klass, steps * batch_size * accumulate, seed)
        self.collate = PromptCollate(tokenizers, token, class_noun, seed)
        self.batch_size, self.accumulate, self.seed = batch_size, accumulate, seed
        self.batches_done = 0

    def train_dataloader(self):
        # Its own generator: without one, a DataLoader draws its base seed from torch's global
        # RNG each time it is iterated, which a resumed run would do at a different moment.
        return torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=ResumedOrder(len(self.dataset), self.batches_done * self.batch_size),
            collate_fn=self.collate, num_workers=0, generator=torch.Generator().manual_seed(self.seed))

    def state_dict(self) -> dict:
        # written at an optimizer step's end: every batch of the steps done is consumed
        return {"batches_done": self.trainer.global_step * self.accumulate}

    def load_state_dict(self, state_dict: dict) -> None:
        self.batches_done = int(state_dict["batches_done"])
