"""Lightning module that distils the bundled VAE's decoder into a TAESD-style one.

The student sees the latents the teacher decoder meets and learns to draw the teacher's
pictures with the edge-weighted loss of the decoder stage: a star's points are a few pixels,
and an unweighted loss lets a small decoder round them off first.
"""
from __future__ import annotations

import lightning as L

from workers.shapes.vae_module import adamw_warmup_cosine, edge_weighted_loss


class FastDecoderTraining(L.LightningModule):
    def __init__(self, decoder, lr: float, total_steps: int, edge_weight: float):
        super().__init__()
        self.decoder = decoder
        self.decoder.encoder.requires_grad_(False)
        self.lr, self.total_steps, self.edge_weight = lr, total_steps, edge_weight

    def training_step(self, batch, batch_idx):
        latents, teacher = batch
        loss = edge_weighted_loss(self.decoder.decode(latents).sample, teacher.float(), self.edge_weight)
        self.log("fast_decoder/weighted_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.decoder.parameters() if p.requires_grad]
        return adamw_warmup_cosine(params, self.lr, 50, self.total_steps)
