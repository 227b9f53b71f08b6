"""DreamBooth end to end on a tiny random base model: artifacts, bank, resume, cancel, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from app.catalog.model_card import LORA_FILE
from workers.dreambooth.config import FinetuneConfig, load_config
from workers.dreambooth.train import Canceled, FinetuneJob, Hooks, run_finetune

ROOT = Path(__file__).resolve().parents[3]


def make_job(base, photos, tmp_path, **overrides) -> FinetuneJob:
    settings = {"steps": 6, "num_class_images": 4, "class_image_steps": 2, "checkpoint_every": 3,
                "validation_images": 1, "validation_steps": 2, **overrides}
    config = load_config(base, **settings)
    return FinetuneJob(images=photos, class_noun="circle", token="sks", base_model=base,
                       out_dir=tmp_path / "model", work_dir=tmp_path / "work", class_bank=tmp_path / "bank",
                       config=config)


def test_full_finetune_exports_only_trained_weights_and_changes_them(tiny_base, photos, tmp_path):
    phases = []
    card = run_finetune(make_job(tiny_base, photos, tmp_path, method="full"), Hooks(on_phase=phases.append))
    assert phases == ["preparing", "class_images", "training", "validating", "done"]
    out = tmp_path / "model"
    assert {p.name for p in out.iterdir()} == {"unet", "text_encoder", "validation", "imagebooth_model.json"}
    assert not list(out.rglob("*.ckpt")) and not list(out.rglob("*.bin"))
    tuned = load_file(next((out / "unet").glob("*.safetensors")))
    base = load_file(next((tiny_base / "unet").glob("*.safetensors")))
    assert any(not torch.equal(tuned[k], base[k]) for k in base)
    saved = json.loads((out / "imagebooth_model.json").read_text())
    assert saved["token"] == "sks" and saved["class_noun"] == "circle" and card["method"] == "full"
    assert len(list((out / "validation").glob("*.png"))) == len(saved["validation"]) > 0
    assert list((tmp_path / "work" / "tensorboard").rglob("events.out.tfevents*"))


def test_lora_saves_one_small_file_the_engine_loads(tiny_base, photos, tmp_path):
    from workers.engine.inputs import GenerationRequest
    from workers.engine.loading import ModelRef
    from workers.engine.sampling import generate_images

    run_finetune(make_job(tiny_base, photos, tmp_path, method="lora"))
    out = tmp_path / "model"
    lora = out / "pytorch_lora_weights.safetensors"
    assert lora.exists() and not (out / "unet").exists()
    full_size = sum(f.stat().st_size for f in (tiny_base / "unet").glob("*.safetensors"))
    assert lora.stat().st_size < full_size
    result = generate_images(ModelRef(tiny_base, out), GenerationRequest(prompt="a sks circle", n=1, seeds=[3], steps=2))
    assert result.images[0].size == (32, 32)
    # the training checkpoint holds the LoRA weights and their optimizer state, not the frozen base
    checkpoint = torch.load(tmp_path / "work" / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert checkpoint["state_dict"] and all("lora" in key for key in checkpoint["state_dict"])
    assert len(checkpoint["optimizer_states"][0]["state"]) == len(checkpoint["state_dict"])


def test_class_image_bank_is_made_once_and_shared(tiny_base, photos, tmp_path):
    run_finetune(make_job(tiny_base, photos, tmp_path / "one"))
    bank = tmp_path / "bank"
    first = make_job(tiny_base, photos, tmp_path / "one").class_bank
    pngs = sorted(first.rglob("*.png"))
    assert len(pngs) == 4
    stamps = [p.stat().st_mtime_ns for p in pngs]
    job = make_job(tiny_base, photos, tmp_path / "two")
    job.class_bank = first
    run_finetune(job)
    assert [p.stat().st_mtime_ns for p in sorted(first.rglob("*.png"))] == stamps
    assert not bank.exists() or bank == first


def test_cancel_stops_training_and_exports_nothing(tiny_base, photos, tmp_path):
    seen = []
    hooks = Hooks(on_progress=lambda step, total: seen.append(step), should_cancel=lambda: len(seen) >= 2)
    with pytest.raises(Canceled):
        run_finetune(make_job(tiny_base, photos, tmp_path, steps=20), hooks)
    assert not (tmp_path / "model").exists()
    assert max(seen) < 20


def _cli(base, photos, out, *extra):
    return [sys.executable, "-m", "workers.dreambooth.cli", "--images", *map(str, photos), "--class-noun", "circle",
            "--token", "sks", "--base-model", str(base), "--out", str(out), *extra]


def test_sigkilled_run_resumes_from_its_checkpoint(tiny_base, photos, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMAGEBOOTH_DATA_DIR": str(tmp_path / "data")}
    config = tmp_path / "slow.yaml"
    config.write_text("steps: 400\ncheckpoint_every: 5\nnum_class_images: 2\nclass_image_steps: 2\nmethod: full\n"
                      "validation_images: 1\nvalidation_steps: 2\n")
    out, work = tmp_path / "model", tmp_path / "model.work"
    child = subprocess.Popen(_cli(tiny_base, photos, out, "--config", str(config)), cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = work / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    # Lightning writes a checkpoint to a temporary file and renames it: once the name exists
    # the file is whole, and a kill during a later save leaves it as it is.
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert checkpoint.exists(), "no checkpoint was written before the kill"
    saved_step = torch.load(checkpoint, weights_only=False, map_location="cpu")["global_step"]
    assert saved_step >= 5
    seen = []
    job = FinetuneJob(images=photos, class_noun="circle", token="sks", base_model=tiny_base, out_dir=out,
                      work_dir=work, class_bank=tmp_path / "data" / "class-bank",
                      config=load_config(tiny_base, config, steps=saved_step + 5))
    run_finetune(job, Hooks(on_progress=lambda step, total: seen.append(step)))
    assert seen[0] > saved_step  # went on from the checkpoint, not from step 0
    assert (out / "unet").is_dir()


def test_ddp_with_two_cpu_processes(tiny_base, photos, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMAGEBOOTH_DATA_DIR": str(tmp_path / "data")}
    config = tmp_path / "ddp.yaml"
    config.write_text("steps: 4\nnum_class_images: 2\nclass_image_steps: 2\n")
    out = tmp_path / "model"
    done = subprocess.run(_cli(tiny_base, photos, out, "--config", str(config), "--devices", "2", "--strategy", "ddp"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # the stable-diffusion preset trains a LoRA
    assert (out / LORA_FILE).is_file() and (out / "imagebooth_model.json").exists()


def test_config_presets_overrides_and_validation(tiny_base, tmp_path):
    stock = load_config(tiny_base)  # a stock SD folder: LoRA, text encoders frozen (diffusers' LoRA recipe)
    assert (stock.method, stock.learning_rate, stock.train_text_encoder) == ("lora", 1e-4, False)
    full = load_config(tiny_base, method="full")  # full keeps the published full recipe
    assert (full.learning_rate, full.train_text_encoder) == (5e-6, True)
    config = tmp_path / "mine.yaml"
    config.write_text("method: full\nlearning_rate: 1.0e-5\n")
    assert load_config(tiny_base, config).learning_rate == 1e-5  # what the file sets wins over the preset's full
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    (shapes / "recipe.json").write_text("{}")
    assert load_config(shapes).learning_rate > 5e-6  # the bundled model has its own preset
    assert load_config(shapes).background_variants and not load_config(tiny_base).background_variants
    assert load_config(shapes, steps=50).steps == 50
    with pytest.raises(ValueError, match="unknown"):
        FinetuneConfig().with_overrides(warp_speed=9)
    with pytest.raises(ValueError, match="method"):
        FinetuneConfig(method="magic")
    with pytest.raises(ValueError, match="validation_images, resolution"):
        FinetuneConfig(validation_images=99, resolution=500)


def test_a_finished_finetune_leaves_no_module_alive(tiny_base, photos, tmp_path):
    import gc

    from workers.dreambooth.module import DreamBoothModule
    from workers.dreambooth.train import free_training_memory

    def alive() -> int:
        return sum(isinstance(o, DreamBoothModule) for o in gc.get_objects())

    gc.collect()
    before = alive()
    gc.disable()  # the module's cycles outlive the job until a collection, as in a busy worker
    try:
        run_finetune(make_job(tiny_base, photos, tmp_path, method="lora", steps=2))
        assert alive() > before
        free_training_memory()
        assert alive() == before
    finally:
        gc.enable()
