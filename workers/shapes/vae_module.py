"""Lightning module that trains the bundled model's autoencoder.

Most steps see 32x32 crops (4x cheaper; the VAE has no attention, so a crop is a valid
input), and the last steps see whole pictures so that its GroupNorm statistics match what
it meets at inference.
"""
from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F


class VaeTraining(L.LightningModule):
    def __init__(self, vae, lr: float, total_steps: int, crop_steps: int, crop: int = 32, kl_weight: float = 1e-6):
        super().__init__()
        self.vae = vae
        self.lr, self.total_steps, self.crop_steps = lr, total_steps, crop_steps
        self.crop, self.kl_weight = crop, kl_weight

    def _crop(self, images: torch.Tensor) -> torch.Tensor:
        if self.global_step >= self.crop_steps:
            return images
        # crops on the VAE's 4-pixel grid, one offset per batch
        limit = (images.shape[-1] - self.crop) // 4
        y, x = (int(torch.randint(0, limit + 1, ())) * 4 for _ in range(2))
        return images[..., y : y + self.crop, x : x + self.crop]

    def training_step(self, batch, batch_idx):
        images = self._crop(batch)
        posterior = self.vae.encode(images).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        l1 = F.l1_loss(recon, images)
        mse = F.mse_loss(recon, images)
        kl = posterior.kl().mean()
        loss = l1 + mse + self.kl_weight * kl
        self.log_dict({"vae/l1": l1, "vae/mse": mse, "vae/kl": kl}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.vae.parameters(), self.lr, 100, self.total_steps)


def warmup_cosine(optimizer, warmup: int, total: int, floor: float = 0.05):
    """Linear warm-up, then cosine down to `floor` of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def adamw_warmup_cosine(params, lr: float, warmup: int, total: int) -> dict:
    """The VAE stages' optimizer (AdamW, no weight decay) and per-step schedule, for Lightning."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup_cosine(optimizer, warmup, total), "interval": "step"}}


def edge_weights(images: torch.Tensor, weight: float) -> torch.Tensor:
    """1 on flat areas, 1 + weight within a pixel of an edge: a star's thin points are a
    few pixels of the whole picture, and an unweighted loss lets the decoder round them off
    (measured: small stars came back as pentagons)."""
    high = F.max_pool2d(images, 3, stride=1, padding=1)
    low = -F.max_pool2d(-images, 3, stride=1, padding=1)
    edge = ((high - low).abs().amax(dim=1, keepdim=True) > 0.05).float()
    return 1.0 + weight * edge


def edge_weighted_loss(recon: torch.Tensor, images: torch.Tensor, weight: float) -> torch.Tensor:
    error = recon - images
    return (edge_weights(images, weight) * (error.abs() + error**2)).mean()


class DecoderTraining(L.LightningModule):
    """Trains only the decoder on cached latents, the encoder frozen: the latents the UNet
    learns on stay exactly the same, so this can run beside (or after) the UNet stage."""

    def __init__(self, vae, lr: float, total_steps: int, edge_weight: float):
        super().__init__()
        self.vae = vae
        self.vae.requires_grad_(False)
        self.vae.decoder.requires_grad_(True)
        self.vae.post_quant_conv.requires_grad_(True)
        self.lr, self.total_steps, self.edge_weight = lr, total_steps, edge_weight

    def training_step(self, batch, batch_idx):
        latents, images = batch
        loss = edge_weighted_loss(self.vae.decode(latents).sample, images, self.edge_weight)
        self.log("decoder/weighted_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return adamw_warmup_cosine([p for p in self.vae.parameters() if p.requires_grad], self.lr, 50, self.total_steps)


class DetailTraining(L.LightningModule):
    """Teaches the whole autoencoder detail inside shapes (detail.py) while the flat world's
    latents stay where the UNet learned them: on flat pictures the encoder must still give
    the cached latents (anchor) and the decoder must still draw from them, so the trained
    UNet keeps working unchanged.

    A fine-tune learns a subject's latents from its photos and draws them on other
    backgrounds, but GroupNorm makes a latent depend on the whole picture: a striped blue
    square encoded on white and pasted into a red picture's latents decoded green (measured).
    So a marked shape is also drawn on a second background, the cells inside the shape are
    taken from the first picture's latents, and the decoder must draw the second picture.

    Each batch is (flat pixels, their cached latents, detailed pixels, the same shape on
    another background, inside-the-shape cell mask)."""

    def __init__(self, vae, lr: float, total_steps: int, edge_weight: float, anchor_weight: float,
                 kl_weight: float = 1e-6):
        super().__init__()
        self.vae = vae.requires_grad_(True)
        self.lr, self.total_steps = lr, total_steps
        self.edge_weight, self.anchor_weight, self.kl_weight = edge_weight, anchor_weight, kl_weight

    def training_step(self, batch, batch_idx):
        flat, flat_latents, detailed, elsewhere, inside = batch
        anchor = F.mse_loss(self.vae.encode(flat).latent_dist.mode(), flat_latents)
        flat_loss = edge_weighted_loss(self.vae.decode(flat_latents).sample, flat, self.edge_weight)
        posterior = self.vae.encode(detailed).latent_dist
        own = posterior.sample()
        detail_loss = edge_weighted_loss(self.vae.decode(own).sample, detailed, self.edge_weight)
        pasted = torch.where(inside, own, self.vae.encode(elsewhere).latent_dist.sample())
        paste_loss = edge_weighted_loss(self.vae.decode(pasted).sample, elsewhere, self.edge_weight)
        kl = posterior.kl().mean()
        loss = flat_loss + detail_loss + paste_loss + self.anchor_weight * anchor + self.kl_weight * kl
        self.log_dict({"detail/flat": flat_loss, "detail/detail": detail_loss, "detail/pasted": paste_loss,
                       "detail/anchor": anchor}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.vae.parameters(), self.lr, 50, self.total_steps)
