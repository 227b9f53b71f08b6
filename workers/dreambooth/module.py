"""The DreamBooth LightningModule: the UNet (and optionally the text encoders) learn the
subject, VAE frozen.

Loss = instance loss + prior_loss_weight x prior loss, on one joint forward pass over
[instance; class] (the paper's class-specific prior preservation). The target follows the
base model's scheduler (epsilon or v-prediction), so any SD-format model trains correctly.
Method "lora" trains peft LoRA adapters on the attention projections instead of all weights.
SD 1.x/2.x and SDXL differ only in their conditioning (conditioning.py); frozen text
encoders' embeddings are cached.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import lightning as L
import torch
import torch.nn.functional as F

from workers.dreambooth.adamw8bit import AdamW8bit
from workers.dreambooth.conditioning import EmbeddingCache, encode, time_ids

UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def add_lora(unet, text_encoders, rank: int, train_text_encoder: bool) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=UNET_LORA_TARGETS))
    for text_encoder in text_encoders:
        text_encoder.requires_grad_(False)
        if train_text_encoder:
            # peft directly: transformers' own add_adapter insists on a newer peft than PyPI has
            inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                               target_modules=TEXT_LORA_TARGETS), text_encoder)


class DreamBoothModule(L.LightningModule):
    def __init__(self, unet, text_encoders, noise_scheduler, config, resolution: int):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoders[0]
        self.text_encoder_2 = text_encoders[1] if len(text_encoders) > 1 else None  # SDXL's second
        self.noise_scheduler, self.config, self.resolution = noise_scheduler, config, resolution
        self.weights_dtype = unet.dtype  # the base's (bf16 for SDXL), before what trains is made fp32
        if config.method == "lora":
            add_lora(unet, text_encoders, config.lora_rank, config.train_text_encoder)
        else:
            unet.requires_grad_(True)
            for text_encoder in text_encoders:
                text_encoder.requires_grad_(config.train_text_encoder)
        # What trains is fp32 even where the frozen weights are bf16 (SDXL): Adam's updates
        # are below bf16's resolution (diffusers' cast_training_params does the same).
        for parameter in self.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        unet.train()
        for text_encoder in text_encoders:
            text_encoder.train(config.train_text_encoder)
        self.embeddings = None if config.train_text_encoder else EmbeddingCache()
        # Checkpoints hold only what trains (on_save_checkpoint); the frozen rest is the base's
        # and comes back from its folder, so a resume loads them non-strictly.
        self.strict_loading = False

    @property
    def text_encoders(self) -> list:
        return [encoder for encoder in (self.text_encoder, self.text_encoder_2) if encoder is not None]

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction for token ids of conditioning.token_ids()'s shape."""
        ids = ids.to(self.device)
        if self.embeddings is not None:
            hidden, pooled = self.embeddings.encode(self.text_encoders, ids)
        else:
            hidden, pooled = encode(self.text_encoders, ids)
        added = None
        if pooled is not None:
            added = {"text_embeds": pooled, "time_ids": time_ids(len(noisy), self.resolution).to(self.device)}
        return self.unet(noisy, timesteps, hidden, added_cond_kwargs=added).sample

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Every network in eval mode (restored after), no gradients, and bf16 autocast where
        the frozen weights are bf16 (outside Lightning's training step nothing else casts)."""
        networks = [self.unet, *self.text_encoders]
        modes = [network.training for network in networks]
        for network in networks:
            network.eval()
        bf16 = self.weights_dtype == torch.bfloat16
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        try:
            with torch.no_grad(), autocast:
                yield
        finally:
            for network, mode in zip(networks, modes):
                network.train(mode)

    def _trained_names(self) -> set[str]:
        return {name for name, parameter in self.named_parameters() if parameter.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The whole SD 1.5 was 3.8 GB per checkpoint; its rank-4 LoRA and optimizer state are MBs.
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
        prediction = self.predict(noisy, timesteps, ids)
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
        text_params = [p for encoder in self.text_encoders for p in encoder.parameters() if p.requires_grad]
        if text_params:
            groups.append({"params": text_params, "lr": self.config.text_encoder_learning_rate})
        optimizer_class = AdamW8bit if self.config.optimizer == "adamw-8bit" else torch.optim.AdamW
        optimizer = optimizer_class(groups, weight_decay=1e-2)
        # constant after a short warm-up, as the reference scripts default to
        warmup = max(1, self.config.steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        optimizer = self.optimizers()
        self.log("train/lr", optimizer.param_groups[0]["lr"])
