"""Bad input raises RequestError (a ValueError) naming the field, before any model work."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.engine import GenerationRequest, ModelRef, RequestError, check_request, generate_images

BAD_REQUESTS = [
    ("prompt", dict(prompt="")),
    ("prompt", dict(prompt="   \n\t")),
    ("prompt", dict(prompt="x" * 1001)),
    ("n", dict(n=0)),
    ("n", dict(n=9)),
    ("n", dict(n=2.0)),
    ("steps", dict(steps=0)),
    ("steps", dict(steps=101)),
    ("guidance_scale", dict(guidance_scale=-0.5)),
    ("guidance_scale", dict(guidance_scale=30.5)),
    ("guidance_scale", dict(guidance_scale=float("nan"))),
    ("seeds", dict(seeds=[-1])),
    ("seeds", dict(seeds=[1.5])),
    ("seeds", dict(seeds=["7"])),
    ("seeds", dict(seeds=[True])),
    ("seeds", dict(n=2, seeds=[1])),
    ("seeds", dict(seeds=[2**32])),
    ("width", dict(width=30)),
    ("height", dict(height=0)),
    ("profile", dict(profile="turbo")),
    ("sampler", dict(sampler="Euler a")),
    ("prompt", dict(prompts=["a red circle"])),  # prompt and prompts together
    ("prompts", dict(prompt="", n=2, prompts=["a red circle"])),
    ("prompts", dict(prompt="", prompts=[" "])),
    ("prompts", dict(prompt="", n=2, prompts=["a red circle", "x" * 1001])),
    ("prompts", dict(prompt="", prompts=[7])),
]


@pytest.mark.parametrize(("field", "changes"), BAD_REQUESTS)
def test_bad_input_names_the_field(field, changes):
    request = GenerationRequest(**{"prompt": "a red circle", **changes})
    with pytest.raises(ValueError) as raised:
        check_request(request)
    assert isinstance(raised.value, RequestError)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}:")


@pytest.mark.parametrize(
    "changes",
    [dict(), dict(n=8, seeds=list(range(8))), dict(steps=1), dict(steps=100), dict(guidance_scale=0),
     dict(guidance_scale=30), dict(seeds=[0]), dict(seeds=[2**32 - 1]), dict(profile="quality"),
     dict(prompt="", n=2, prompts=["a red circle", "a blue star"])],
)
def test_good_input_passes(changes):
    check_request(GenerationRequest(**{"prompt": "a red circle", **changes}))


def test_bad_input_fails_before_loading_any_model(tmp_path):
    # The folder does not exist: a load would raise FileNotFoundError, the check comes first.
    missing = ModelRef(base=Path(tmp_path / "nowhere"))
    with pytest.raises(RequestError, match=r"^n:"):
        generate_images(missing, GenerationRequest(prompt="a red circle", n=0))
