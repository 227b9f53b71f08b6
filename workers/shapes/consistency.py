"""Consistency distillation (LCM) of the bundled model into a few-step student.

The recipe of diffusers' `examples/consistency_distillation/train_lcm_distill_lora_sd_wds.py`
on this model's own teacher: a skipping-step DDIM solver on the training schedule (50 solver
timesteps, 20 apart), the teacher guided at the model card's scale, the student a LoRA on a
copy of the teacher's UNet, its own (gradient-free) prediction one solver step later as the
target, and a pseudo-Huber loss. The student is a LoRA so that it travels in a few MB beside
the teacher in the 40 MB model folder, and unguided, so a picture costs one UNet row per step.

The model is v-prediction on a cosine schedule: with a_t = sqrt(alphas_cumprod[t]) and
s_t = sqrt(1 - alphas_cumprod[t]), x0 = a_t x_t - s_t v and eps = s_t x_t + a_t v.
"""
from __future__ import annotations

import lightning as L
import torch

from workers.shapes.vae_module import warmup_cosine

SOLVER_STEPS = 50
SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0  # LCMScheduler's default, so its boundary conditions match training
HUBER_C = 0.001
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                "conv1", "conv2", "conv_shortcut", "time_emb_proj")


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LCM's c_skip and c_out: the student is exactly the identity at t = 0."""
    scaled = TIMESTEP_SCALING * t.float()
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip[:, None, None, None], c_out[:, None, None, None]


def add_student_lora(unet, rank: int):
    """The teacher's UNet with a trainable LoRA on its convolutions, attention and MLPs."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=list(LORA_TARGETS)))
    return unet


class ConsistencyDistillation(L.LightningModule):
    def __init__(self, teacher, student, text_encoder, alphas_cumprod: torch.Tensor, scaling_factor: float,
                 guidance_scale: float, lr: float, total_steps: int):
        super().__init__()
        self.teacher = teacher.requires_grad_(False).eval()
        self.student = student
        self.text_encoder = text_encoder.requires_grad_(False).eval()
        self.scaling_factor, self.guidance_scale = scaling_factor, guidance_scale
        self.lr, self.total_steps = lr, total_steps
        self.skip = len(alphas_cumprod) // SOLVER_STEPS
        self.register_buffer("alpha", alphas_cumprod.float().sqrt(), persistent=False)
        self.register_buffer("sigma", (1 - alphas_cumprod.float()).sqrt(), persistent=False)
        self.register_buffer("solver_timesteps", torch.arange(1, SOLVER_STEPS + 1) * self.skip - 1, persistent=False)

    def _x0_eps(self, v: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self.alpha[t][:, None, None, None], self.sigma[t][:, None, None, None]
        return a * x - s * v, s * x + a * v

    def _consistency(self, unet, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x0, _ = self._x0_eps(unet(x, t, context).sample, x, t)
        c_skip, c_out = boundary_scalings(t)
        return c_skip * x + c_out * x0

    @torch.no_grad()
    def _teacher_step(self, x: torch.Tensor, t: torch.Tensor, prev: torch.Tensor, context, empty) -> torch.Tensor:
        """One guided DDIM step of the teacher from t to prev."""
        v = self.teacher(torch.cat([x, x]), torch.cat([t, t]), torch.cat([empty, context])).sample
        (x0_u, eps_u), (x0_c, eps_c) = (self._x0_eps(half, x, t) for half in v.chunk(2))
        g = self.guidance_scale
        x0, eps = x0_u + g * (x0_c - x0_u), eps_u + g * (eps_c - eps_u)
        a, s = self.alpha[prev][:, None, None, None], self.sigma[prev][:, None, None, None]
        return a * x0 + s * eps

    def training_step(self, batch, batch_idx):
        latents, ids, empty_ids = batch
        latents = latents * self.scaling_factor
        with torch.no_grad():
            context = self.text_encoder(ids)[0]
            empty = self.text_encoder(empty_ids)[0]
        index = torch.randint(0, SOLVER_STEPS, (len(latents),), device=latents.device)
        t = self.solver_timesteps[index]
        prev = (t - self.skip).clamp(min=0)
        noise = torch.randn_like(latents)
        a, s = self.alpha[t][:, None, None, None], self.sigma[t][:, None, None, None]
        noisy = a * latents + s * noise
        prediction = self._consistency(self.student, noisy, t, context)
        x_prev = self._teacher_step(noisy, t, prev, context, empty)
        with torch.no_grad():
            target = self._consistency(self.student, x_prev, prev, context)
        loss = (((prediction - target) ** 2 + HUBER_C**2).sqrt() - HUBER_C).mean()
        self.log("lcm/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=1e-2)
        schedule = warmup_cosine(optimizer, min(100, self.total_steps // 10 + 1), self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
