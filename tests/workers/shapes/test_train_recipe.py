"""The whole base-model recipe, end to end, on the tiny configuration."""
import json

import pytest
import torch

from workers.shapes.train import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    out = main(["--tiny", "--work-dir", str(work), "--out", str(work / "model")])
    return work, out


def test_exports_a_complete_diffusers_folder_that_loads_offline(trained):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    _, out = trained
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (out / part).is_dir(), part
    assert not list(out.rglob("*.bin")) and list(out.rglob("*.safetensors"))
    pipe = StableDiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    image = pipe("a red circle", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_records_stage_times_and_the_vae_check(trained):
    work, out = trained
    times = json.loads((out / "training_times.json").read_text())
    assert {"data", "tokenizer", "vae", "vae_check", "latents", "unet", "decoder", "detail"} <= set(times)
    check = json.loads((work / "vae_check.json").read_text())
    assert 0.0 <= check["attribute_accuracy"] <= 1.0
    assert 0.0 < check["detail_pixel_agreement"] <= 1.0
    assert (work / "vae_detail" / "config.json").exists()


def test_refuses_to_mix_runs_and_resumes_without_retraining(trained):
    work, out = trained
    with pytest.raises(SystemExit):
        main(["--tiny", "--work-dir", str(work), "--out", str(out)])
    before = (work / "checkpoints" / "unet" / "last.ckpt").stat().st_mtime
    main(["--tiny", "--work-dir", str(work), "--out", str(out), "--resume"])
    assert (work / "checkpoints" / "unet" / "last.ckpt").stat().st_mtime == before


def test_export_only_writes_the_last_checkpoint_as_a_model(trained, tmp_path):
    from diffusers import StableDiffusionPipeline

    work, _ = trained
    out = main(["--tiny", "--resume", "--export-only", "--work-dir", str(work), "--out", str(tmp_path / "early")])
    pipe = StableDiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert pipe.unet.config.sample_size == 16
