"""The random-weight builder: published architectures (counted without allocating), tiny builds on disk."""

from __future__ import annotations

import pytest
import torch

from workers import random_models


def _meta_counts(name: str) -> dict[str, int]:
    """Parameters per part of an architecture, built on the meta device (no memory, no init)."""
    import diffusers

    arch = random_models.ARCHITECTURES[name]
    with torch.device("meta"):
        parts = {
            "unet": diffusers.UNet2DConditionModel(in_channels=4, out_channels=4, **arch.unet),
            "vae": diffusers.AutoencoderKL(**arch.vae),
        }
        for index, config in enumerate(arch.text_encoders):
            parts[f"text_encoder{'_2' if index else ''}"] = random_models._text_encoder(config, index > 0)
    return {part: sum(p.numel() for p in module.parameters()) for part, module in parts.items()}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # millions of parameters of the published checkpoints (SD 1.5, SD 2.1, SDXL base 1.0)
        ("sd15", {"unet": 859.5, "vae": 83.7, "text_encoder": 123.1}),
        ("sd2v", {"unet": 865.9, "vae": 83.7, "text_encoder": 340.4}),
        ("sdxl", {"unet": 2567.5, "vae": 83.7, "text_encoder": 123.1, "text_encoder_2": 694.7}),
    ],
)
def test_architectures_have_the_published_sizes(name, expected):
    counts = _meta_counts(name)
    assert {part: round(count / 1e6, 1) for part, count in counts.items()} == expected


@pytest.mark.parametrize(("name", "pipeline_class"), [("tiny-sd", "StableDiffusionPipeline"),
                                                      ("tiny-sdxl", "StableDiffusionXLPipeline")])
def test_tiny_builds_load_offline_as_their_family(tmp_path, name, pipeline_class):
    import diffusers

    folder = random_models.cached_model(name, tmp_path)
    marker = folder / random_models._COMPLETE
    built_at = marker.stat().st_mtime_ns
    assert random_models.cached_model(name, tmp_path) == folder  # cached, not rebuilt
    assert marker.stat().st_mtime_ns == built_at
    pipe = diffusers.DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    assert type(pipe).__name__ == pipeline_class
    if name == "tiny-sdxl":  # pooled embeddings and the time ids' projection line up
        assert pipe.text_encoder_2.config.projection_dim + 6 * pipe.unet.config.addition_time_embed_dim == (
            pipe.unet.config.projection_class_embeddings_input_dim)
    assert random_models.parameter_counts(folder)["unet"] == sum(p.numel() for p in pipe.unet.parameters())


def test_unknown_architecture_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown architecture 'sd3'.*sd15"):
        random_models.cached_model("sd3", tmp_path)
