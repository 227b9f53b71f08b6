"""Lightning module that trains the UNet and the text encoder together on cached latents.

v-prediction on a cosine noise schedule (its last step is nearly pure noise, so sampling
from pure noise matches training and the background colour is not left to leak through),
min-SNR loss weighting truncated at 1 (see v_loss_weight), and an EMA of both networks,
which is what gets exported.
"""
from __future__ import annotations

import copy

import lightning as L
import torch
import torch.nn.functional as F

from workers.shapes.vae_module import warmup_cosine

MIN_SNR_GAMMA = 5.0


def v_loss_weight(snr: torch.Tensor) -> torch.Tensor:
    """Min-SNR weighting, truncated at 1 for the noisiest steps.

    In x0 terms a v-prediction loss weighs a step by snr + 1. Classic min-SNR-gamma caps that
    at min(snr, gamma), which tends to 0 as the noise takes over - and the noisiest steps are
    where the layout is decided: with it the model learned colours and shapes but placed
    every shape where the noise put it (position at chance after 1,250 steps). Capping
    min(snr + 1, gamma) keeps full weight there and still tempers the easy, low-noise steps.
    """
    return torch.clamp(snr + 1, max=MIN_SNR_GAMMA) / (snr + 1)


class DiffusionTraining(L.LightningModule):
    def __init__(self, unet, text_encoder, noise_scheduler, scaling_factor: float, lr: float,
                 total_steps: int, ema_decay: float = 0.999, warmup: int = 300):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder
        self.ema_unet = copy.deepcopy(unet).requires_grad_(False)
        self.ema_text_encoder = copy.deepcopy(text_encoder).requires_grad_(False)
        self.noise_scheduler = noise_scheduler
        self.scaling_factor = scaling_factor
        self.lr, self.total_steps, self.ema_decay, self.warmup = lr, total_steps, ema_decay, warmup
        alphas = noise_scheduler.alphas_cumprod.float()
        self.register_buffer("snr", alphas / (1 - alphas), persistent=False)

    def training_step(self, batch, batch_idx):
        latents, ids = batch
        latents = latents * self.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(latents),), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        target = self.noise_scheduler.get_velocity(latents, noise, t)
        hidden = self.text_encoder(ids)[0]
        pred = self.unet(noisy, t, hidden).sample
        per_sample = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
        weight = v_loss_weight(self.snr[t])
        loss = (weight * per_sample).mean()
        self.log("unet/loss", loss, prog_bar=True)
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx):
        # EMA warms up so early averages are not dominated by the random initialisation
        decay = min(self.ema_decay, (1 + self.global_step) / (10 + self.global_step))
        for ema, live in ((self.ema_unet, self.unet), (self.ema_text_encoder, self.text_encoder)):
            for e, p in zip(ema.parameters(), live.parameters()):
                e.lerp_(p, 1 - decay)

    def configure_optimizers(self):
        params = list(self.unet.parameters()) + list(self.text_encoder.parameters())
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=1e-2)
        schedule = warmup_cosine(optimizer, self.warmup, self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
