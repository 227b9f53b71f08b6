"""Fixtures for the engine tests: a tiny random SD pipeline on disk, loaded back by path.

The folder is written once per session (about a second) with save_pretrained as safetensors
and read back offline exactly as a real model folder is; each test then takes milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from workers.engine.loading import ModelRef, PipelineCache
from workers.engine.tiny_model import TinyModelConfig, write_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd") / "tiny-sd", TinyModelConfig())


@pytest.fixture(scope="session")
def tiny_v_model_dir(tmp_path_factory) -> Path:
    """The same tiny model declared as v-prediction, to check the config is honoured."""
    config = TinyModelConfig(prediction_type="v_prediction")
    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd_v") / "tiny-sd-v", config)


@pytest.fixture(scope="session")
def engine_cache() -> PipelineCache:
    """One warm cache for the session, as a worker process has."""
    return PipelineCache(max_personal=2, device=torch.device("cpu"))


@pytest.fixture()
def tiny_ref(tiny_model_dir) -> ModelRef:
    return ModelRef(base=tiny_model_dir, name="tiny-sd")


@pytest.fixture()
def loaded(engine_cache, tiny_ref):
    return engine_cache.get(tiny_ref, "quality")


@pytest.fixture()
def loaded_fast(engine_cache, tiny_ref):
    return engine_cache.get(tiny_ref, "fast")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a shared 2-core machine (training jobs,
    other suites) spinning OpenMP threads made single tests 10x slower. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
