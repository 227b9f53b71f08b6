"""The transforms train_dreambooth.py uses, with torchvision's semantics for PIL pictures."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


class InterpolationMode:
    BILINEAR = Image.Resampling.BILINEAR


class Compose:
    def __init__(self, steps):
        self.steps = list(steps)

    def __call__(self, value):
        for step in self.steps:
            value = step(value)
        return value


class Resize:
    """Scales the shorter side to `size`, keeping the aspect ratio."""

    def __init__(self, size: int, interpolation=InterpolationMode.BILINEAR):
        self.size, self.interpolation = size, interpolation

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        if min(w, h) == self.size:
            return image
        scale = self.size / min(w, h)
        return image.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))), self.interpolation)


class CenterCrop:
    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        left, top = round((w - self.size) / 2), round((h - self.size) / 2)
        return image.crop((left, top, left + self.size, top + self.size))


class RandomCrop(CenterCrop):
    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        top = int(torch.randint(0, h - self.size + 1, ()))
        left = int(torch.randint(0, w - self.size + 1, ()))
        return image.crop((left, top, left + self.size, top + self.size))


class ToTensor:
    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = np.array(image, dtype=np.uint8)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        return torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return (tensor - self.mean) / self.std
