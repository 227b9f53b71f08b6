"""Personal model folders for the engine tests, written as DreamBooth runs write them."""

from __future__ import annotations

import torch


def write_full_finetune(base_dir, folder, scale: float):
    """A personal folder with only a (perturbed) unet/, as a full DreamBooth run writes it."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base_dir / "unet")
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.mul_(scale)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    return folder


def write_lora(base_dir, folder, with_text_encoder: bool):
    """A peft LoRA saved the way workers/dreambooth/export.py (and diffusers' script) saves it."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_pretrained(base_dir / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = {"unet_lora_layers": unet}
    if with_text_encoder:
        text_encoder = CLIPTextModel.from_pretrained(base_dir / "text_encoder")
        config = LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
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
