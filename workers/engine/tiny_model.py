"""A tiny, randomly initialised Stable-Diffusion-format folder, for tests.

Every layer's tests (engine, worker tasks, API end to end) need a real diffusers folder to
load by path, offline, in well under a second; the bundled model is too slow for that and may
not exist yet. This writes one from scratch: the same files a real SD checkpoint has
(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/, safetensors), so the
engine cannot tell it apart from a real model except by size. Personal model folders (a full
fine-tune, a LoRA) are written here too, as DreamBooth runs write them, with perturbed
weights. Nothing in production uses this module; tests and benchmarks do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

# The word pieces the tiny tokenizer knows whole; anything else falls back to single bytes,
# so every prompt tokenizes (CLIP's byte-level BPE never needs an unknown token).
_WORDS = ("a", "red", "blue", "circle", "square", "star", "on", "the", "left", "background")


@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes small enough that a 4-step, 2-image generation takes well under a second."""

    image_size: int = 32  # pixels; the VAE below downsamples by 2, so latents are 16x16
    unet_channels: tuple[int, ...] = (8, 16)
    vae_channels: tuple[int, ...] = (8, 16)
    text_width: int = 32
    text_layers: int = 2
    prediction_type: str = "epsilon"
    seed: int = 0


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table (from OpenAI's CLIP)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def write_clip_tokenizer(folder: Path, max_length: int = 16) -> int:
    """Write vocab.json + merges.txt for a working byte-level CLIP BPE; returns vocab size."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab_list = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for word in _WORDS:
        # Merge left to right: "r e", "re d</w>" ... so each listed word becomes one token.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            if pieces[0] not in vocab_list:
                vocab_list.append(pieces[0])
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(vocab_list)}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    # Load back through the files, as any real CLIP tokenizer folder is read.
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length}), encoding="utf-8"
    )
    CLIPTokenizer.from_pretrained(folder).save_pretrained(folder)
    return len(vocab)


def _unet(config: TinyModelConfig):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=config.image_size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=config.unet_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=config.text_width,
        attention_head_dim=4,
        norm_num_groups=4,
    )


def _vae(config: TinyModelConfig):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=config.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * len(config.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(config.vae_channels),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=config.image_size,
    )


def _text_encoder(config: TinyModelConfig, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=config.text_width,
            intermediate_size=config.text_width * 2,
            num_hidden_layers=config.text_layers,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )


def _scheduler(config: TinyModelConfig):
    from diffusers import PNDMScheduler

    # The scheduler real SD 1.x folders ship, with their betas; the engine must read
    # prediction type, beta schedule and spacing from here rather than assume them.
    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
        prediction_type=config.prediction_type,
        timestep_spacing="leading",
    )


def write_tiny_pipeline(folder: Path | str, config: TinyModelConfig | None = None) -> Path:
    """Write a random tiny SD pipeline to `folder` (safetensors) and return the path."""
    from diffusers import StableDiffusionPipeline

    config = config or TinyModelConfig()
    folder = Path(folder)
    torch.manual_seed(config.seed)
    tokenizer_dir = folder / "tokenizer"
    vocab_size = write_clip_tokenizer(tokenizer_dir)
    from transformers import CLIPTokenizer

    pipe = StableDiffusionPipeline(
        vae=_vae(config),
        text_encoder=_text_encoder(config, vocab_size),
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        unet=_unet(config),
        scheduler=_scheduler(config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def write_full_finetune(base_dir, folder, scale: float):
    """A personal folder with only a (perturbed) unet/, as a full DreamBooth run writes it."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base_dir / "unet")
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.mul_(scale)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    return folder


def write_lora(base_dir, folder, with_text_encoder: bool, seed: int = 1, rank: int = 4):
    """A peft LoRA saved the way workers/dreambooth/export.py (and diffusers' script) saves it."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(base_dir / "unet")
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = {"unet_lora_layers": unet}
    if with_text_encoder:
        text_encoder = CLIPTextModel.from_pretrained(base_dir / "text_encoder")
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
        inject_adapter_in_model(config, text_encoder)
        layers["text_encoder_lora_layers"] = text_encoder
    for name, model in layers.items():
        with torch.no_grad():  # peft starts B at zero (a no-op adapter); make it do something
            for key, parameter in model.named_parameters():
                if "lora_B" in key:
                    parameter.normal_(0, 0.5)
        layers[name] = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
    StableDiffusionPipeline.save_lora_weights(str(folder), safe_serialization=True, **layers)
    return folder
