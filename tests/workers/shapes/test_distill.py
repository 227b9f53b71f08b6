"""The distillation stages (fast decoder, 2-step consistency student) on a seconds-long config."""
import json
from pathlib import Path

import pytest
import torch

from workers.shapes.consistency import ConsistencyDistillation, boundary_scalings
from workers.shapes.distill import FAST_DECODER_DIR, main
from workers.shapes.stages import noise_scheduler

BUNDLED = Path(__file__).resolve().parents[3] / "models" / "shapes-v1"
pytestmark = pytest.mark.skipif(not (BUNDLED / "model_index.json").exists(), reason="bundled model missing")


def test_v_prediction_conversions_and_boundary_conditions():
    alphas = noise_scheduler().alphas_cumprod
    module = ConsistencyDistillation(torch.nn.Identity(), torch.nn.Identity(), torch.nn.Identity(), alphas, 1.0,
                                     2.0, 1e-4, 10)
    t = torch.tensor([19, 499, 999])
    x0, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    a, s = alphas[t].sqrt()[:, None, None, None], (1 - alphas[t]).sqrt()[:, None, None, None]
    back_x0, back_eps = module._x0_eps(a * eps - s * x0, a * x0 + s * eps, t)
    torch.testing.assert_close(back_x0, x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(back_eps, eps, atol=1e-4, rtol=1e-4)
    c_skip, c_out = boundary_scalings(torch.tensor([0, 999]))
    assert c_skip.flatten().tolist()[0] == 1.0 and c_out.flatten().tolist()[0] == 0.0
    assert c_skip.flatten()[1] < 1e-5 and c_out.flatten()[1] > 0.999


@pytest.mark.parametrize("stage", ["decoder", "student"])
def test_stage_trains_scores_and_leaves_the_model_folder_alone(tmp_path, stage):
    card_before = (BUNDLED / "imagebooth_model.json").read_text()
    scores = main([stage, "--tiny", "--model", str(BUNDLED), "--work-dir", str(tmp_path)])
    assert set(scores) == {"before", "after"}
    assert 0.0 <= scores["after"]["attribute_accuracy"] <= 1.0
    assert json.loads((tmp_path / f"{stage}_scores.json").read_text()) == scores
    candidate = tmp_path / f"candidate_{stage}"
    card = json.loads((candidate / "imagebooth_model.json").read_text())
    if stage == "decoder":
        from diffusers import AutoencoderTiny

        assert card["fast_decoder"] == FAST_DECODER_DIR
        decoder = AutoencoderTiny.from_pretrained(candidate / FAST_DECODER_DIR)
        assert decoder.decode(torch.randn(1, 4, 16, 16)).sample.shape == (1, 3, 64, 64)
    else:
        from diffusers import UNet2DConditionModel

        assert (card["steps"], card["guidance_scale"]) == (2, 1.0)
        assert (scores["after"]["steps"], scores["after"]["sampler"]) == (2, "LCM")
        unet = UNet2DConditionModel.from_pretrained(candidate / "unet")  # the LoRA merged into plain weights
        assert not any("lora" in name for name, _ in unet.named_parameters())
    assert (tmp_path / "checkpoints").is_dir()  # resumable
    assert (BUNDLED / "imagebooth_model.json").read_text() == card_before


def test_merged_student_computes_what_the_lora_student_computes(tmp_path):
    from diffusers import UNet2DConditionModel

    from workers.engine.tiny_model import TinyModelConfig, write_tiny_pipeline
    from workers.shapes.consistency import add_student_lora
    from workers.shapes.distill import _merged_unet

    folder = write_tiny_pipeline(tmp_path / "tiny", TinyModelConfig())
    student = add_student_lora(UNet2DConditionModel.from_pretrained(folder / "unet"), rank=4)
    with torch.no_grad():
        for name, parameter in student.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)
    inputs = (torch.randn(2, 4, 16, 16), torch.tensor(500), torch.randn(2, 16, 32))
    with torch.no_grad():
        expected = student(*inputs).sample
        merged = _merged_unet(student)(*inputs).sample
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)
