"""Model families (SD, SDXL), single-file checkpoints, few-step defaults and bad model paths,
on the tiny random builds of workers/random_models.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from app.catalog.checkpoint import ModelPathError, check_model_path
from app.catalog.model_card import model_defaults
from workers import random_models
from workers.engine.backend_choice import BackendSettings
from workers.engine.inputs import GenerationRequest
from workers.engine.loading import ModelRef, PipelineCache
from workers.engine.sampling import generate
from workers.engine.schedulers import make_scheduler
from workers.single_file import copy_configs, folder_to_single_file


@pytest.fixture(scope="module")
def tiny_sd(random_model_builds):
    return random_models.cached_model("tiny-sd", random_model_builds)


@pytest.fixture()
def cache():
    return PipelineCache(device=torch.device("cpu"), backend=BackendSettings(mode="torch"))


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_sdxl_folder_samples_as_the_stock_sdxl_pipeline(tiny_sdxl, cache):
    """Both encoders, pooled embeddings, time ids, CFG in one batch, per-image seeds, and
    zeros for no negative prompt: the same pixels as diffusers' own SDXL pipeline."""
    from diffusers import StableDiffusionXLPipeline

    loaded = cache.get(ModelRef(base=tiny_sdxl), "quality")
    assert type(loaded.pipe).__name__ == "StableDiffusionXLPipeline"
    stock = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl, local_files_only=True, add_watermarker=False)
    stock.scheduler = make_scheduler(stock.scheduler.config, "DPM++ 2M")
    stock.set_progress_bar_config(disable=True)
    for negative in ("blue", ""):
        ours = generate(loaded, GenerationRequest(prompt="a red circle", n=2, seeds=[1, 2], steps=4,
                                                  guidance_scale=5.0, negative_prompt=negative, profile="quality"))
        theirs = stock(["a red circle"] * 2, negative_prompt=[negative] * 2 if negative else None,
                       num_inference_steps=4, guidance_scale=5.0,
                       generator=[torch.Generator().manual_seed(seed) for seed in (1, 2)]).images
        assert (ours.width, ours.height) == (32, 32)  # the UNet's sample size x the VAE's scale
        for mine, stock_image in zip(ours.images, theirs):
            assert np.abs(_pixels(mine) - _pixels(stock_image)).max() <= 1


def test_sdxl_fast_profile_batches_prompts_with_per_image_seeds(tiny_sdxl, cache):
    loaded = cache.get(ModelRef(base=tiny_sdxl), "fast")
    both = generate(loaded, GenerationRequest(prompts=["a red circle", "a blue star"], n=2, seeds=[5, 6]))
    alone = generate(loaded, GenerationRequest(prompt="a blue star", n=1, seeds=[6]))
    assert both.sampler == "UniPC" and both.prompts == ["a red circle", "a blue star"]
    assert np.abs(_pixels(both.images[1]) - _pixels(alone.images[0])).max() <= 2


@pytest.mark.parametrize("name", ["tiny-sd", "tiny-sdxl"])
def test_single_file_round_trips_and_generates(random_model_builds, tmp_path, cache, name):
    folder = random_models.cached_model(name, random_model_builds)
    beside = copy_configs(folder, tmp_path / "with-configs")
    file = folder_to_single_file(folder, beside / f"{name}.safetensors")
    (beside / f"{name}.imagebooth_model.json").write_text(json.dumps({"name": "from a file", "steps": 3}))
    assert model_defaults(file).name == "from a file"  # the card beside the file
    from_file = cache.get(ModelRef(base=file), "quality")
    from_folder = cache.get(ModelRef(base=folder), "quality")
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if getattr(from_folder.pipe, part, None) is None:
            continue
        theirs = getattr(from_folder.pipe, part).state_dict()
        ours = getattr(from_file.pipe, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs), part
    result = generate(cache.get(ModelRef(base=file), "fast"), GenerationRequest(prompt="a red circle", seeds=[0]))
    assert result.steps == 3 and result.model_name == "from a file" and result.images[0].size == (32, 32)


def test_a_single_file_without_configs_names_what_it_needs(random_model_builds, tmp_path):
    file = folder_to_single_file(random_models.cached_model("tiny-sdxl", random_model_builds), tmp_path / "alone.safetensors")
    with pytest.raises(ModelPathError, match=r"single-file SDXL checkpoint.*IMAGEBOOTH_MODEL_CONFIG_PATH"):
        check_model_path(file)
    partial = copy_configs(random_models.cached_model("tiny-sdxl", random_model_builds), tmp_path / "partial")
    shutil.rmtree(partial / "tokenizer_2")
    with pytest.raises(ModelPathError, match=r"lacks tokenizer_2/tokenizer\.json or vocab\.json and merges\.txt"):
        check_model_path(file, partial)
    other = copy_configs(random_models.cached_model("tiny-sd", random_model_builds), tmp_path / "sd-configs")
    with pytest.raises(ModelPathError, match="is not"):
        check_model_path(file, other)


def test_bad_model_paths_are_named(tmp_path):
    from safetensors.torch import save_file

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelPathError, match="not a model folder"):
        check_model_path(empty)
    other = tmp_path / "kandinsky"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(ModelPathError, match="KandinskyPipeline, a family ImageBooth does not serve"):
        check_model_path(other)
    save_file({"weight": torch.zeros(2)}, tmp_path / "lora.safetensors")
    with pytest.raises(ModelPathError, match="not a Stable Diffusion checkpoint"):
        check_model_path(tmp_path / "lora.safetensors")
    save_file({"model.diffusion_model.out.2.weight": torch.zeros(2), "te.x": torch.zeros(1)},
              tmp_path / "odd.safetensors")
    with pytest.raises(ModelPathError, match=r"architecture of .* is not recognised"):
        check_model_path(tmp_path / "odd.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a header")
    with pytest.raises(ModelPathError, match=r"not a readable \.safetensors"):
        check_model_path(tmp_path / "junk.safetensors")
    (tmp_path / "model.ckpt").write_bytes(b"pickle")
    with pytest.raises(ModelPathError, match="pickles are not loaded"):
        check_model_path(tmp_path / "model.ckpt")


def test_few_step_models_are_sampled_as_they_were_distilled(tiny_sd, tmp_path, cache):
    """An LCM folder names its sampler by its scheduler; a turbo model's card by its words."""
    lcm = shutil.copytree(tiny_sd, tmp_path / "lcm")
    config_file = lcm / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "_class_name": "LCMScheduler"}))
    assert (model_defaults(lcm).sampler, model_defaults(lcm).steps, model_defaults(lcm).guidance_scale) == (
        "LCM", 4, 1.0)
    result = generate(cache.get(ModelRef(base=lcm), "fast"), GenerationRequest(prompt="a red circle", seeds=[0]))
    assert (result.sampler, result.steps, result.guidance_scale) == ("LCM", 4, 1.0)
    turbo = shutil.copytree(tiny_sd, tmp_path / "turbo")
    (turbo / "imagebooth_model.json").write_text(json.dumps({"sampler": "Euler", "steps": 1, "guidance_scale": 0}))
    result = generate(cache.get(ModelRef(base=turbo), "quality"), GenerationRequest(prompt="a red circle", seeds=[0],
                                                                                     profile="quality"))
    assert (result.sampler, result.steps, result.guidance_scale) == ("Euler", 1, 0.0)


def test_a_personal_model_of_another_base_is_refused(tiny_sd, tiny_sdxl, tmp_path, cache):
    from app.catalog.checkpoint import IncompatibleModel
    from workers.engine.families import base_architecture
    from workers.engine.tiny_model import write_lora

    lora = write_lora(tiny_sd, tmp_path / "sd-lora", with_text_encoder=False)
    assert cache.get(ModelRef(base=tiny_sd, personal=lora), "quality") is not None  # fits its own base
    with pytest.raises(IncompatibleModel, match="LoRA does not fit"):  # no card: the weights do not fit
        cache.get(ModelRef(base=tiny_sdxl, personal=lora), "quality")
    sd_unet = cache.get(ModelRef(base=tiny_sd), "quality").pipe.unet
    (lora / "imagebooth_model.json").write_text(json.dumps({"base_architecture": base_architecture(sd_unet)}))
    with pytest.raises(IncompatibleModel, match=r"trained on a SD base model .* cannot run on .*a SDXL model"):
        cache.get(ModelRef(base=tiny_sdxl, personal=lora), "quality")
