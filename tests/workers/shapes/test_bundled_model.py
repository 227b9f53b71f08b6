"""The committed bundled model: loads offline, follows a prompt, reproduces a seed."""
from pathlib import Path

import numpy as np
import pytest

from workers.shapes.reader import read_picture
from workers.shapes.world import PALETTE

MODEL = Path(__file__).resolve().parents[3] / "models" / "shapes-v1"


@pytest.fixture(scope="module")
def generate():
    from workers.engine import GenerationRequest, ModelRef, generate_images

    def run(prompt: str, seeds: list[int]):
        return generate_images(ModelRef(MODEL), GenerationRequest(prompt=prompt, n=len(seeds), seeds=seeds)).images

    return run


def test_is_a_complete_small_safetensors_folder():
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (MODEL / part).is_dir(), part
    assert not list(MODEL.rglob("*.bin"))
    assert sum(f.stat().st_size for f in MODEL.rglob("*") if f.is_file()) < 40 * 2**20


def test_loads_with_the_stock_pipeline_offline():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(MODEL), local_files_only=True)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64


def test_same_seed_same_picture(generate):
    first, second = generate("a small green star on the left on a white background", [42]), generate(
        "a small green star on the left on a white background", [42])
    assert np.array_equal(np.asarray(first[0]), np.asarray(second[0]))


def test_red_circle_on_blue_is_mostly_blue_with_a_red_region(generate):
    for image in generate("a red circle on a blue background", [1, 2, 3]):
        pixels = np.asarray(image, dtype=np.int32)
        near = lambda rgb: (np.abs(pixels - np.array(rgb)).sum(-1) < 90).mean()  # noqa: E731
        assert near(PALETTE["blue"]) > 0.5
        assert near(PALETTE["red"]) > 0.03
        reading = read_picture(image)
        assert (reading.background, reading.color, reading.shape) == ("blue", "red", "circle")
