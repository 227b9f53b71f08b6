"""What runs the networks: the three calls the sampling loop makes, behind one small interface.

The loop (sampling.py) owns the request: seeds, noise, the scheduler, guidance, progress and
cancellation. A backend only runs networks on tensors it is handed:

    encode_text(input_ids, attention_mask, input_ids_2)
                                                -> (rows, tokens, width) fp32 hidden states
                                                   (SDXL: both tokenizers' ids; families.py)
    predict_noise(model_input, t, embeddings)   -> (rows, C, h, w) fp32 UNet output
    decode(latents)                             -> (n, 3, H, W) fp32 pixels in [-1, 1]

`TorchBackend` runs the pipeline's own modules in the profile's dtypes (GPUs, the quality
profile, and the fallback everywhere); `openvino_backend.OpenVinoBackend` runs the same
weights compiled for this CPU. Later work (several jobs in one UNet batch, adapters swapped on
one warm base) builds on these three calls, not on either implementation.
"""
from __future__ import annotations

from typing import Protocol

import torch

from workers.engine.profiles import Profile, autocast_context


class Backend(Protocol):
    name: str  # shown in the worker log and the PNG parameters, e.g. "openvino-bf16"
    # compiled per input shape (each batch size is compiled on first use); eager PyTorch is not
    static_shapes: bool

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    input_ids_2: torch.Tensor | None = None) -> torch.Tensor: ...

    def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


def decoder_input(latents: torch.Tensor, decoder_config) -> torch.Tensor:
    """Undo the latent scaling the decoder was trained with (a TAESD-style one has none)."""
    latents = latents / decoder_config["scaling_factor"]
    shift = decoder_config.get("shift_factor")
    return latents + shift if shift else latents


def dtype_label(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


class TorchBackend:
    """The pipeline's modules as loaded (profiles.apply_profile set their dtype and device).

    `decoder` is the module that turns latents into pixels: the pipeline's VAE, or a cheaper
    distilled one (AutoencoderTiny) where the fast profile uses it.
    """

    def __init__(self, pipe, profile: Profile, device: torch.device, decoder=None):
        self.pipe, self.profile, self.device = pipe, profile, device
        self.decoder = decoder if decoder is not None else pipe.vae
        self.name = f"torch-{dtype_label(pipe.unet.dtype)}"
        self.static_shapes = profile.compile_unet  # torch.compile(dynamic=False)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    input_ids_2: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if attention_mask is None else attention_mask.to(self.device)
        with autocast_context(self.profile, self.device):
            return self.pipe.text_encoder(input_ids.to(self.device), attention_mask=mask)[0].float()

    def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        unet = self.pipe.unet
        with autocast_context(self.profile, self.device):
            out = unet(model_input.to(unet.dtype), t, encoder_hidden_states=embeddings.to(unet.dtype),
                       return_dict=False)[0]
        return out.float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        decoder = self.decoder
        with autocast_context(self.profile, self.device):
            pixels = decoder.decode(decoder_input(latents, decoder.config).to(decoder.dtype), return_dict=False)[0]
        return pixels.float()
