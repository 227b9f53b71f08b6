"""Profiles: what fast and quality resolve to, and that fast stays faithful to fp32."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from app.catalog.model_card import model_defaults
from workers.engine import GenerationRequest, generate, resolve_profile
from workers.engine.backend_choice import BackendSettings
from workers.engine.loading import LoadedPipeline, ModelRef, load_base
from workers.engine.profiles import cpu_has_native_bf16
from workers.engine.schedulers import make_scheduler

CPU = torch.device("cpu")


def test_quality_is_full_precision_with_more_steps():
    quality = resolve_profile("quality", CPU)
    assert quality.steps == 25 and quality.sampler == "DPM++ 2M"
    assert {quality.unet_dtype, quality.vae_dtype, quality.text_encoder_dtype} == {torch.float32}
    assert not (quality.int8_linear or quality.channels_last or quality.compile_unet)


def test_fast_on_cpu_keeps_only_what_measured_faster():
    fast = resolve_profile("fast", CPU)
    assert fast.sampler == "UniPC" and fast.steps is None  # steps: the model card's
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert (fast.unet_dtype, fast.vae_dtype, fast.text_encoder_dtype) == (expected, expected, torch.float32)
    assert not (fast.int8_linear or fast.channels_last or fast.compile_unet or fast.autocast_dtype)
    assert resolve_profile("fast", CPU, compile_unet=True).compile_unet


def test_unknown_profile():
    with pytest.raises(ValueError, match=r"^profile:"):
        resolve_profile("ultra", CPU)


def _load(folder, profile) -> LoadedPipeline:
    info, modules, backend = load_base(folder, profile, CPU, BackendSettings(mode="torch"))
    return LoadedPipeline(info, modules, ModelRef(folder), profile, CPU, model_defaults(folder), backend)


@pytest.mark.parametrize(
    "speedup",
    [dict(unet_dtype=torch.bfloat16, vae_dtype=torch.bfloat16), dict(int8_linear=True),
     dict(channels_last=True), dict(autocast_dtype=torch.bfloat16)],
    ids=["bf16", "int8", "channels_last", "autocast"],
)
def test_each_speedup_keeps_images_close_to_fp32(tiny_model_dir, speedup):
    reference = dataclasses.replace(resolve_profile("quality", CPU), name="fast", sampler="UniPC", steps=4)
    fp32, faster = _load(tiny_model_dir, reference), _load(tiny_model_dir, dataclasses.replace(reference, **speedup))
    request = GenerationRequest(prompt="a red circle", n=2, seeds=[1, 2])
    a = np.stack([np.asarray(i).astype(np.int16) for i in generate(fp32, request).images])
    b = np.stack([np.asarray(i).astype(np.int16) for i in generate(faster, request).images])
    diff = np.abs(a - b)
    assert diff.mean() < 2.0 and diff.max() <= 16, (diff.mean(), diff.max())


def test_fast_profile_honours_v_prediction(engine_cache, tiny_v_model_dir):
    loaded = engine_cache.get(ModelRef(base=tiny_v_model_dir), "fast")
    scheduler = make_scheduler(loaded.pipe.scheduler.config, "UniPC", 8)
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.timestep_spacing == "leading"
    result = generate(loaded, GenerationRequest(prompt="a red circle", seeds=[3]))
    assert result.images[0].size == (32, 32)


def test_sampler_that_repeats_timesteps_is_refused_clearly(tmp_path):
    """Karras sigmas on a cosine schedule (the bundled model's) would crash mid-run."""
    config = {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction",
              "timestep_spacing": "trailing", "steps_offset": 1}
    with pytest.raises(ValueError, match=r"^sampler: DPM\+\+ 2M Karras repeats timesteps"):
        make_scheduler(config, "DPM++ 2M Karras", 8)
    assert len(make_scheduler(config, "UniPC", 8).timesteps) == 8
    assert len(set(make_scheduler(json.loads(json.dumps(config)), "DPM++ 2M", 25).timesteps.tolist())) == 25
