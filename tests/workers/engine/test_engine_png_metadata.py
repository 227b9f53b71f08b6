"""The PNG `parameters` chunk: A1111's format, written and read back."""

from __future__ import annotations

from PIL import Image

from workers.engine import GenerationRequest, generate
from workers.engine.png_metadata import (
    ImageParameters,
    format_parameters,
    parameters_for,
    parse_parameters,
    png_bytes,
    read_parameters,
    save_png,
)

SAMPLE = ImageParameters(
    prompt="a red circle on a blue background",
    negative_prompt="blurry, green",
    steps=8,
    sampler="DPM++ 2M",
    cfg_scale=4.0,
    seed=123,
    width=64,
    height=64,
    model="shapes-v1",
)


def test_format_is_a1111s_one_line_parameters():
    assert format_parameters(SAMPLE) == (
        "a red circle on a blue background\n"
        "Negative prompt: blurry, green\n"
        "Steps: 8, Sampler: DPM++ 2M, CFG scale: 4.0, Seed: 123, Size: 64x64, Model: shapes-v1"
    )


def test_no_negative_prompt_line_when_empty():
    params = ImageParameters(**{**SAMPLE.__dict__, "negative_prompt": ""})
    assert format_parameters(params).split("\n") == [
        "a red circle on a blue background",
        "Steps: 8, Sampler: DPM++ 2M, CFG scale: 4.0, Seed: 123, Size: 64x64, Model: shapes-v1",
    ]


def test_round_trip_through_text():
    assert parse_parameters(format_parameters(SAMPLE)) == SAMPLE


def test_round_trip_of_awkward_values():
    params = ImageParameters(
        prompt="line one, with: colon\nline two",
        negative_prompt="bad\nworse",
        steps=30,
        sampler="DPM++ 2M Karras",
        cfg_scale=7.5,
        seed=4294967295,
        width=512,
        height=768,
        model='alice\'s "cat", v2: final',
        extra={"Profile": "quality"},
    )
    assert parse_parameters(format_parameters(params)) == params


def test_reads_a_string_written_by_a1111():
    text = (
        "masterpiece, a cat\nNegative prompt: lowres, bad anatomy\n"
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 965400086, "
        "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"
    )
    params = parse_parameters(text)
    assert (params.prompt, params.negative_prompt) == ("masterpiece, a cat", "lowres, bad anatomy")
    assert (params.steps, params.sampler, params.cfg_scale, params.seed) == (20, "Euler a", 7.0, 965400086)
    assert (params.width, params.height, params.model) == (512, 512, "v1-5-pruned-emaonly")
    assert params.extra == {"Schedule type": "Automatic", "Model hash": "6ce0161689", "Version": "v1.10.1"}


def test_png_file_round_trip(tmp_path):
    image = Image.new("RGB", (64, 64), (220, 40, 40))
    path = save_png(image, tmp_path / "out.png", SAMPLE)
    assert read_parameters(path) == SAMPLE
    with Image.open(path) as reopened:
        assert reopened.text["parameters"] == format_parameters(SAMPLE)  # a plain text chunk
        assert reopened.size == (64, 64)


def test_non_latin_prompt_survives(tmp_path):
    params = ImageParameters(**{**SAMPLE.__dict__, "prompt": "un cercle rouge, 赤い円"})
    assert read_parameters(png_bytes(Image.new("RGB", (8, 8)), params)) == params


def test_png_without_parameters_reads_as_none(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    assert read_parameters(path) is None


def test_parameters_of_a_generated_image_reproduce_it(loaded_fast):
    result = generate(loaded_fast, GenerationRequest(prompt="a blue star", negative_prompt="red", n=2, seeds=[9, 10]))
    params = read_parameters(png_bytes(result.images[1], parameters_for(result, 1)))
    assert (params.prompt, params.negative_prompt, params.seed) == ("a blue star", "red", 10)
    assert (params.steps, params.sampler, params.cfg_scale) == (result.steps, "UniPC", result.guidance_scale)
    assert (params.width, params.height, params.model) == (32, 32, "tiny-sd")
    again = generate(loaded_fast, GenerationRequest(
        prompt=params.prompt, negative_prompt=params.negative_prompt, seeds=[params.seed],
        steps=params.steps, guidance_scale=params.cfg_scale, sampler=params.sampler))
    assert again.images[0].tobytes() == result.images[1].tobytes() or _close(again.images[0], result.images[1])


def test_each_image_of_a_prompt_list_carries_its_own_prompt(loaded_fast):
    prompts = ["a blue star", "a red circle on the left"]
    result = generate(loaded_fast, GenerationRequest(prompts=prompts, n=2, seeds=[1, 2]))
    stored = [read_parameters(png_bytes(image, parameters_for(result, k))) for k, image in enumerate(result.images)]
    assert [(params.prompt, params.seed) for params in stored] == [("a blue star", 1), ("a red circle on the left", 2)]


def _close(a, b) -> bool:
    import numpy as np

    return np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 2
