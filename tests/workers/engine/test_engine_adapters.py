"""LoRA personal models as adapters on the one warm base: same pictures as fused, switching,
the LRU by bytes, and full fine-tunes and the base untouched by them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.engine import GenerationRequest, ModelRef, PipelineCache, generate
from workers.engine.tiny_model import write_full_finetune, write_lora

PROMPT = "a red circle on the left"
CPU = torch.device("cpu")


def picture(loaded, seed=5) -> np.ndarray:
    result = generate(loaded, GenerationRequest(prompt=PROMPT, seeds=[seed], steps=4, profile="quality"))
    return np.asarray(result.images[0]).astype(np.int16)


def fused_reference(base_dir, folder) -> np.ndarray:
    """What the LoRA draws fused into a private copy (how personal models were served before)."""
    cache = PipelineCache(device=CPU)
    loaded = cache.get(ModelRef(base=base_dir), "quality")
    loaded.pipe.load_lora_weights(str(folder), weight_name="pytorch_lora_weights.safetensors")
    loaded.pipe.fuse_lora()
    loaded.pipe.unload_lora_weights()
    return picture(loaded)


@pytest.fixture(scope="module")
def loras(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return [write_lora(tiny_model_dir, root / f"lora{k}", with_text_encoder=k % 2 == 1, seed=k) for k in range(4)]


def test_a_lora_is_an_adapter_on_the_base_and_draws_what_fused_draws(tiny_model_dir, loras):
    cache = PipelineCache(device=CPU, adapter_cache_bytes=2**30)
    base = cache.get(ModelRef(base=tiny_model_dir), "quality")
    before = picture(base)
    for folder in loras[:2]:  # one on the UNet only, one on the text encoder too
        personal = cache.get(ModelRef(base=tiny_model_dir, personal=folder), "quality")
        assert personal.pipe is base.pipe and personal.adapter is not None  # no copy of any part
        assert np.abs(picture(personal) - fused_reference(tiny_model_dir, folder)).max() <= 1
        assert np.abs(picture(personal) - before).max() > 2
    assert np.array_equal(picture(base), before)  # the base runs with every adapter off
    assert cache.personal_keys() == []  # nothing went into the full fine-tunes' LRU


def test_switching_adapters_keeps_each_models_picture(tiny_model_dir, loras):
    cache = PipelineCache(device=CPU, adapter_cache_bytes=2**30)
    refs = [ModelRef(base=tiny_model_dir, personal=folder) for folder in loras]
    alone = [picture(PipelineCache(device=CPU).get(ref, "quality")) for ref in refs]
    for ref, expected in [*zip(refs, alone), *zip(reversed(refs), reversed(alone)), (refs[0], alone[0])]:
        assert np.array_equal(picture(cache.get(ref, "quality")), expected)
    assert len(cache.adapter_set(tiny_model_dir, "quality").loaded) == 4  # two of them on the text encoder too


def test_adapters_are_evicted_by_bytes_least_recent_first(tiny_model_dir, loras):
    probe = PipelineCache(device=CPU, adapter_cache_bytes=2**30)
    probe.get(ModelRef(base=tiny_model_dir, personal=loras[0]), "quality")
    one = probe.adapter_set(tiny_model_dir, "quality").nbytes  # loras[0] and [2] are the same size
    cache = PipelineCache(device=CPU, adapter_cache_bytes=int(2.5 * one))
    refs = [ModelRef(base=tiny_model_dir, personal=folder) for folder in (loras[0], loras[2], loras[0])]
    names = [cache.get(ref, "quality").adapter for ref in refs]
    adapters = cache.adapter_set(tiny_model_dir, "quality")
    assert adapters.loaded == [names[1], names[0]] and adapters.nbytes <= int(2.5 * one)
    third = write_lora(tiny_model_dir, loras[0].parent / "lora-extra", with_text_encoder=False, seed=9)
    expected = picture(PipelineCache(device=CPU).get(ModelRef(base=tiny_model_dir, personal=third), "quality"))
    assert np.array_equal(picture(cache.get(ModelRef(base=tiny_model_dir, personal=third), "quality")), expected)
    assert names[1] not in adapters.loaded and len(adapters.loaded) == 2  # the least recent went
    layers = [m for m in adapters.pipe.unet.modules() if hasattr(m, "lora_A")]
    assert layers and all(list(layer.lora_A) == ["personal"] for layer in layers)  # one slot, no adapter's own layers
    assert names[1] not in adapters._weights  # its tensors are gone


def test_full_finetunes_share_the_base_beside_adapters(tiny_model_dir, loras, tmp_path):
    cache = PipelineCache(device=CPU, adapter_cache_bytes=2**30)
    full = write_full_finetune(tiny_model_dir, tmp_path / "full", scale=1.05)
    full_ref = ModelRef(base=tiny_model_dir, personal=full)
    before = picture(cache.get(full_ref, "quality"))
    cache.get(ModelRef(base=tiny_model_dir, personal=loras[1]), "quality")  # an adapter on the text encoder
    loaded = cache.get(full_ref, "quality")
    assert loaded.pipe.text_encoder is cache.get(ModelRef(base=tiny_model_dir), "quality").pipe.text_encoder
    assert np.array_equal(picture(loaded), before)  # the shared text encoder ran without the adapter
