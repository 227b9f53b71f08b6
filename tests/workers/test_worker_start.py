"""The inference worker warms its model once per process, whichever Celery signals fire."""
from __future__ import annotations

import os


def test_the_model_is_warmed_once_per_process(tmp_path, env_override, monkeypatch):
    import workers.engine as engine
    import workers.generation as generation

    env_override(MODEL_PATH=str(tmp_path), MAX_BATCH_IMAGES="1")
    warmed: list[object] = []
    monkeypatch.setattr(engine, "warm_up", lambda model: warmed.append(model))
    monkeypatch.setattr(generation, "_prepared_in", set())
    generation._prepare_process(1)  # worker_process_init (the solo pool sends it too)
    generation._prepare_process(1)  # worker_ready
    assert len(warmed) == 1 and os.getpid() in generation._prepared_in
