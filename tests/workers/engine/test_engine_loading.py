"""Loading from local folders, the warm cache, and personal models sharing the base."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.catalog.checkpoint import ModelPathError
from workers.engine import GenerationRequest, ModelRef, PipelineCache, generate
from workers.engine.tiny_model import write_full_finetune

PROMPT = "a red circle on the left"


def first_image(loaded, seed=5, profile="quality") -> np.ndarray:
    result = generate(loaded, GenerationRequest(prompt=PROMPT, seeds=[seed], steps=4, profile=profile))
    return np.asarray(result.images[0]).astype(np.int16)


def test_loads_offline_from_a_local_folder(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = PipelineCache(device=torch.device("cpu"))
    loaded = cache.get(ModelRef(base=tiny_model_dir), "quality")
    pipe = loaded.pipe
    assert pipe.safety_checker is None
    assert pipe.unet.dtype == torch.float32
    assert (tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert first_image(loaded).shape == (32, 32, 3)


def test_pipeline_is_loaded_once_per_path_and_profile(engine_cache, tiny_model_dir):
    quality = engine_cache.get(ModelRef(base=tiny_model_dir), "quality")
    again = engine_cache.get(ModelRef(base=tiny_model_dir / ".." / tiny_model_dir.name), "quality")
    fast = engine_cache.get(ModelRef(base=tiny_model_dir), "fast")
    assert again.pipe is quality.pipe  # same folder by another spelling: same warm pipeline
    assert fast.pipe is not quality.pipe  # profiles prepare weights differently


def test_missing_folder_is_a_clear_error(tmp_path):
    cache = PipelineCache(device=torch.device("cpu"))
    with pytest.raises(ModelPathError, match="not a model folder"):
        cache.get(ModelRef(base=tmp_path), "fast")


def test_unknown_profile_is_refused(engine_cache, tiny_model_dir):
    with pytest.raises(ValueError, match=r"^profile:"):
        engine_cache.get(ModelRef(base=tiny_model_dir), "turbo")


# --- personal models -------------------------------------------------------------------------


@pytest.fixture()
def personal_cache():
    return PipelineCache(max_personal=2, device=torch.device("cpu"))


def test_personal_unet_is_used_and_the_base_is_untouched(personal_cache, tiny_model_dir, tmp_path):
    base = personal_cache.get(ModelRef(base=tiny_model_dir), "quality")
    base_unet_before = {k: v.clone() for k, v in base.pipe.unet.state_dict().items()}
    base_image = first_image(base)
    folder = write_full_finetune(tiny_model_dir, tmp_path / "alice-cat", scale=1.05)
    personal = personal_cache.get(ModelRef(base=tiny_model_dir, personal=folder), "quality")
    assert personal.pipe is not base.pipe
    assert personal.pipe.unet is not base.pipe.unet
    # Everything not fine-tuned is the base's very object, not a copy.
    assert personal.pipe.vae is base.pipe.vae
    assert personal.pipe.text_encoder is base.pipe.text_encoder
    assert personal.pipe.tokenizer is base.pipe.tokenizer
    assert np.abs(first_image(personal) - base_image).max() > 2
    assert np.array_equal(first_image(base), base_image)
    for key, value in base.pipe.unet.state_dict().items():
        assert torch.equal(value, base_unet_before[key]), key
    assert personal.display_name == "alice-cat"


def test_personal_models_are_kept_in_a_small_lru(personal_cache, tiny_model_dir, tmp_path):
    folders = [write_full_finetune(tiny_model_dir, tmp_path / f"m{i}", 1.0 + i / 50) for i in range(3)]
    refs = [ModelRef(base=tiny_model_dir, personal=folder) for folder in folders]
    first = personal_cache.get(refs[0], "quality")
    personal_cache.get(refs[1], "quality")
    assert personal_cache.get(refs[0], "quality").pipe is first.pipe  # a hit, now most recent
    personal_cache.get(refs[2], "quality")  # over capacity 2: evicts m1, the least recent
    assert [key[1].name for key in personal_cache.personal_keys()] == ["m0", "m2"]
    reloaded = personal_cache.get(refs[1], "quality")  # loads again, evicts m0
    assert [key[1].name for key in personal_cache.personal_keys()] == ["m2", "m1"]
    assert personal_cache.get(refs[0], "quality").pipe is not first.pipe
    assert reloaded.pipe.vae is first.pipe.vae  # the base stays shared through it all


def test_personal_folder_without_weights_is_a_clear_error(personal_cache, tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="personal model"):
        personal_cache.get(ModelRef(base=tiny_model_dir, personal=tmp_path), "quality")


def test_personal_model_in_the_fast_profile(personal_cache, tiny_model_dir, tmp_path):
    folder = write_full_finetune(tiny_model_dir, tmp_path / "fast-one", scale=1.05)
    loaded = personal_cache.get(ModelRef(base=tiny_model_dir, personal=folder), "fast")
    base = personal_cache.get(ModelRef(base=tiny_model_dir), "fast")
    assert loaded.pipe.vae is base.pipe.vae
    assert np.abs(first_image(loaded, profile="fast") - first_image(base, profile="fast")).max() > 2
