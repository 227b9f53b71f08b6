"""The DreamBooth LightningModule: UNet and text encoder learn the subject, VAE frozen.

Loss = instance loss + prior_loss_weight x prior loss, on one joint forward pass over
[instance; class] (the paper's class-specific prior preservation). The target follows the
base model's scheduler (epsilon or v-prediction), so any SD-format model trains correctly.
Method "lora" trains peft LoRA adapters on the attention projections instead of all weights.
"""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def add_lora(unet, text_encoder, rank: int, train_text_encoder: bool) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=UNET_LORA_TARGETS))
    text_encoder.requires_grad_(False)
    if train_text_encoder:
        # peft directly: transformers' own add_adapter insists on a newer peft than PyPI has
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                           target_modules=TEXT_LORA_TARGETS), text_encoder)


class DreamBoothModule(L.LightningModule):
    def __init__(self, unet, text_encoder, noise_scheduler, config):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder
        self.noise_scheduler, self.config = noise_scheduler, config
        if config.method == "lora":
            add_lora(unet, text_encoder, config.lora_rank, config.train_text_encoder)
        else:
            unet.requires_grad_(True)
            text_encoder.requires_grad_(config.train_text_encoder)
        unet.train()
        text_encoder.train(config.train_text_encoder)
        # Checkpoints hold only what trains (on_save_checkpoint); the frozen rest is the base's
        # and comes back from its folder, so a resume loads them non-strictly.
        self.strict_loading = False

    def _trained_names(self) -> set[str]:
        return {name for name, parameter in self.named_parameters() if parameter.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The whole SD 1.5 was 3.8 GB per checkpoint; its rank-8 LoRA and optimizer state are MBs.
        trained = self._trained_names()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        missing = self._trained_names() - set(checkpoint["state_dict"])
        if missing:  # non-strict loading must not silently restart a part from the base
            raise ValueError(f"checkpoint: lacks {len(missing)} trained weights, e.g. {sorted(missing)[0]}")

    def _target(self, latents, noise, timesteps):
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return noise

    def training_step(self, batch, batch_idx):
        # 1. one joint batch: instance pictures first, then class pictures
        latents, ids = batch["instance"], batch["instance_ids"]
        if "class" in batch:
            latents, ids = torch.cat([latents, batch["class"]]), torch.cat([ids, batch["class_ids"]])
        # 2. noise them at random timesteps
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(latents),), device=self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        # 3. predict and split the loss back into its two parts
        prediction = self.unet(noisy, timesteps, self.text_encoder(ids)[0]).sample
        target = self._target(latents, noise, timesteps)
        n = len(batch["instance"])
        instance_loss = F.mse_loss(prediction[:n].float(), target[:n].float())
        loss = instance_loss
        if "class" in batch:
            prior_loss = F.mse_loss(prediction[n:].float(), target[n:].float())
            loss = instance_loss + self.config.prior_loss_weight * prior_loss
            self.log("train/prior_loss", prior_loss)
        self.log_dict({"train/instance_loss": instance_loss, "train/loss": loss}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        groups = [{"params": [p for p in self.unet.parameters() if p.requires_grad], "lr": self.config.learning_rate}]
        text_params = [p for p in self.text_encoder.parameters() if p.requires_grad]
        if text_params:
            groups.append({"params": text_params, "lr": self.config.text_encoder_learning_rate})
        optimizer = torch.optim.AdamW(groups, weight_decay=1e-2)
        # constant after a short warm-up, as the reference scripts default to
        warmup = max(1, self.config.steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        optimizer = self.optimizers()
        self.log("train/lr", optimizer.param_groups[0]["lr"])
