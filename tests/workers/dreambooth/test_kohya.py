"""The kohya/A1111 LoRA a fine-tune exports: keys and shapes as A1111 reads them, and the
same picture through diffusers' LoRA loader as the model it came from."""
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open

from workers.dreambooth.config import load_config
from workers.dreambooth.kohya import KOHYA_WEIGHTS_NAME
from workers.dreambooth.train import FinetuneJob, run_finetune

# A1111's extensions-builtin/Lora/networks.py maps these diffusers-style names to its modules
A1111_UNET = re.compile(r"^lora_unet_(down_blocks_\d+_attentions_\d+|mid_block_attentions_\d+|up_blocks_\d+_attentions_\d+)"
                        r"_transformer_blocks_\d+_attn[12]_(to_q|to_k|to_v|to_out_0)$")
A1111_TEXT = re.compile(r"^lora_te_text_model_encoder_layers_\d+_self_attn_(q_proj|k_proj|v_proj|out_proj)$")


@pytest.fixture(scope="module")
def lora_model(tiny_base, tmp_path_factory):
    from workers.dreambooth.subjects import EVAL_SUBJECTS, subject_photos

    root = tmp_path_factory.mktemp("kohya")
    config = load_config(tiny_base, method="lora", train_text_encoder=True, steps=3, num_class_images=2, class_image_steps=2,
                         checkpoint_every=3, lora_rank=4, learning_rate=0.05, text_encoder_learning_rate=0.05)
    job = FinetuneJob(images=subject_photos(EVAL_SUBJECTS[0], 3, root / "photos"), class_noun="circle", token="sks",
                      base_model=tiny_base, out_dir=root / "model", work_dir=root / "work", class_bank=root / "bank",
                      config=config)
    run_finetune(job)
    return job.out_dir


def _module_path(kohya_name: str, modules: dict, prefix: str) -> str:
    """The module a kohya name stands for (its underscores are dots or part of a name)."""
    wanted = kohya_name.removeprefix(prefix)
    [match] = [path for path in modules if path.replace(".", "_") == wanted]
    return match


def test_keys_and_shapes_are_what_a1111_expects(lora_model, tiny_base):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_base, local_files_only=True)
    unet, text = dict(pipe.unet.named_modules()), dict(pipe.text_encoder.named_modules())
    text = {f"text_model.{path}" if not path.startswith("text_model") else path: m for path, m in text.items()}
    with safe_open(str(lora_model / KOHYA_WEIGHTS_NAME), framework="pt") as weights:
        keys = list(weights.keys())
        tensors = {key: weights.get_tensor(key) for key in keys}
        metadata = weights.metadata()
    modules = {key.split(".")[0] for key in keys}
    assert modules and all(A1111_UNET.match(name) or A1111_TEXT.match(name) for name in modules), sorted(modules)[:3]
    assert any(name.startswith("lora_te_") for name in modules) and any(name.startswith("lora_unet_") for name in modules)
    for name in modules:
        assert {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"} <= set(keys)
        table, prefix = (unet, "lora_unet_") if name.startswith("lora_unet_") else (text, "lora_te_")
        linear = table[_module_path(name, table, prefix)]
        down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
        assert down.shape == (4, linear.in_features) and up.shape == (linear.out_features, 4)
        assert tensors[f"{name}.alpha"].numel() == 1 and float(tensors[f"{name}.alpha"]) == 4.0
    assert metadata["ss_network_dim"] == "4"


def test_loaded_back_through_diffusers_it_draws_the_same_picture(lora_model, tiny_base):
    from diffusers import StableDiffusionPipeline

    def picture(weight_name: str | None) -> np.ndarray:
        pipe = StableDiffusionPipeline.from_pretrained(tiny_base, local_files_only=True, safety_checker=None,
                                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        if weight_name:
            pipe.load_lora_weights(str(lora_model), weight_name=weight_name)
        return pipe("a sks circle", num_inference_steps=3, generator=torch.Generator().manual_seed(7),
                    output_type="np").images[0]

    original, kohya = picture("pytorch_lora_weights.safetensors"), picture(KOHYA_WEIGHTS_NAME)
    assert np.abs(original - kohya).max() < 1e-5
    assert np.abs(original - picture(None)).max() > 1e-2  # and the LoRA does change the picture
