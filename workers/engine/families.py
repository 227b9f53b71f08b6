"""Model families in the engine: the pipeline a model path builds, and SDXL's conditioning.

A diffusers folder of SD 1.x / 2.x builds `StableDiffusionPipeline`, one of SDXL
`StableDiffusionXLPipeline`; a single `.safetensors` file builds either through diffusers'
single-file loading against a local config folder (app.catalog.checkpoint recognises the file
and finds and checks that folder; nothing is fetched). Everything after loading is the same
sampling loop: SDXL differs only in what conditions its UNet, which its backend handles:

- both text encoders' penultimate hidden states, side by side (768 + 1280 wide);
- the second encoder's pooled, projected embedding, and the size and crop "time ids"
  (original size, crop corner, target size), through `added_cond_kwargs`.

The pooled embedding travels as one extra row after the token rows of the hidden states, so
the loop's batching (concatenation, one row per image, the unconditional half) carries it
along unchanged, whichever family it samples.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from app.catalog.checkpoint import (
    FAMILY_PIPELINES,
    IncompatibleModel,
    ModelKind,
    check_model_path,
    single_file_config,
)
from workers.engine.backends import TorchBackend
from workers.engine.profiles import Profile, autocast_context


def _model_config_path() -> Path | None:
    from app.config import get_settings

    return get_settings().model_config_path


def model_kind(path: Path) -> ModelKind:
    """The family of `path`, with a single file's config folder checked (ModelPathError if not)."""
    return check_model_path(path, _model_config_path())


def load_dtypes(kind: ModelKind, profile: Profile) -> torch.dtype | dict[str, torch.dtype]:
    """What the weights are read in. SD folders load in fp32: the compiled backend is exported
    from fp32 weights, and apply_profile casts afterwards. SDXL's 3.5B parameters would be 14 GB
    in fp32, so they are read straight into the profile's dtypes (a single file takes one)."""
    if kind.family == "sd":
        return torch.float32
    if kind.single_file:
        return profile.unet_dtype
    return {"unet": profile.unet_dtype, "vae": profile.vae_dtype, "default": profile.text_encoder_dtype}


def read_pipeline(path: Path, profile: Profile):
    """The diffusers pipeline of a folder or single file, read from local files only."""
    import diffusers

    kind = model_kind(path)
    pipeline_class = getattr(diffusers, FAMILY_PIPELINES[kind.family])
    # The product is its own safety gate (the checker would also cost a CLIP vision pass);
    # SDXL's invisible watermark likewise.
    options = ({"add_watermarker": False} if kind.family == "sdxl"
               else {"safety_checker": None, "requires_safety_checker": False})
    dtype = load_dtypes(kind, profile)
    if not kind.single_file:
        return pipeline_class.from_pretrained(path, local_files_only=True, dtype=dtype, **options)
    config = single_file_config(path, _model_config_path())
    pipe = pipeline_class.from_single_file(str(path), config=str(config), local_files_only=True, dtype=dtype,
                                           **options)
    pipe.register_to_config(_name_or_path=str(path))  # where its card is (model_defaults)
    return pipe


def is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def pack_pooled(hidden: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """(rows, tokens, width) + (rows, pooled width) -> (rows, tokens + 1, width)."""
    row = F.pad(pooled, (0, hidden.shape[-1] - pooled.shape[-1]))
    return torch.cat([hidden, row[:, None]], dim=1)


def unpack_pooled(embeddings: torch.Tensor, pooled_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    return embeddings[:, :-1], embeddings[:, -1, :pooled_width]


def size_time_ids(latents: torch.Tensor, vae_scale_factor: int) -> torch.Tensor:
    """SDXL's micro-conditioning as its pipeline defaults it: drawn at the target size, uncropped."""
    height, width = latents.shape[-2] * vae_scale_factor, latents.shape[-1] * vae_scale_factor
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).expand(len(latents), -1)


class SdxlTorchBackend(TorchBackend):
    """TorchBackend with SDXL's two text encoders and added conditioning."""

    def __init__(self, pipe, profile: Profile, device: torch.device, decoder=None):
        super().__init__(pipe, profile, device, decoder)
        self.pooled_width = pipe.text_encoder_2.config.projection_dim

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    input_ids_2: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids_2 is None:
            raise ValueError("SDXL: the second tokenizer's ids are needed")
        with autocast_context(self.profile, self.device):
            first = self.pipe.text_encoder(input_ids.to(self.device), output_hidden_states=True)
            second = self.pipe.text_encoder_2(input_ids_2.to(self.device), output_hidden_states=True)
        hidden = torch.cat([first.hidden_states[-2].float(), second.hidden_states[-2].float()], dim=-1)
        return pack_pooled(hidden, second.text_embeds.float())

    def predict_noise(self, model_input: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        unet = self.pipe.unet
        hidden, pooled = unpack_pooled(embeddings, self.pooled_width)
        added = {"text_embeds": pooled.to(self.device, unet.dtype),
                 "time_ids": size_time_ids(model_input, self.pipe.vae_scale_factor).to(self.device, unet.dtype)}
        with autocast_context(self.profile, self.device):
            out = unet(model_input.to(unet.dtype), t, encoder_hidden_states=hidden.to(unet.dtype),
                       added_cond_kwargs=added, return_dict=False)[0]
        return out.float()


def torch_backend(pipe, profile: Profile, device: torch.device, decoder=None) -> TorchBackend:
    """The PyTorch backend for the pipeline's family."""
    backend_class = SdxlTorchBackend if is_sdxl(pipe) else TorchBackend
    return backend_class(pipe, profile, device, decoder)


# The UNet shapes a personal model's weights depend on: another base with the same ones can
# run it; one without them (another family, another size) would crash or draw noise.
_ARCHITECTURE_KEYS = ("block_out_channels", "cross_attention_dim", "in_channels", "addition_embed_type")


def base_architecture(unet) -> dict:
    """What a personal model's card records about the base it was trained on."""
    config = unet.config
    return {"family": "sdxl" if config.get("addition_embed_type") == "text_time" else "sd",
            **{key: _plain(config.get(key)) for key in _ARCHITECTURE_KEYS}}


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def check_personal_base(card: dict, base_unet, base_name: str) -> None:
    """Refuse a personal model trained on a base of another architecture (IncompatibleModel)."""
    trained_on = card.get("base_architecture")
    if not isinstance(trained_on, dict):
        return  # made before cards recorded it; a LoRA that does not fit still fails to load
    here = base_architecture(base_unet)
    if trained_on != here:
        raise IncompatibleModel(
            f"This personal model was trained on a {trained_on.get('family', '?').upper()} base model "
            f"({trained_on.get('cross_attention_dim')}-wide text) and cannot run on {base_name}, "
            f"a {here['family'].upper()} model ({here['cross_attention_dim']}-wide).")
