"""`prompts`: one picture per prompt (instead of prompt and n), priced as n pictures, each
image with its own prompt; and the words the model does not know, named in the 202."""

from __future__ import annotations

import pytest

from app.generation.models import Generation

LIST = ["a red circle", "a small blue star on the left", "a purple unicorn on the moon"]


def _submit(client, **body):
    return client.post("/api/v1/generations", json=body)


def test_a_prompt_list_is_one_job_of_one_picture_per_prompt(caller, db) -> None:
    listed = _submit(caller, prompts=LIST, steps=4)
    assert listed.status_code == 202, listed.text
    same_as_three = _submit(caller, prompt="a red circle", n=3, steps=4).json()
    assert listed.json()["cost"] == same_as_three["cost"]  # priced as n pictures, by the same rule
    job = caller.get(f"/api/v1/generations/{listed.json()['id']}").json()
    assert (job["prompt"], job["prompts"], job["n"]) == (LIST[0], LIST, 3)
    stored = db.get(Generation, listed.json()["id"])
    assert stored.image_prompts() == LIST and stored.prompt_of(2) == LIST[2]


def test_unknown_words_are_named_per_prompt_in_the_202(caller) -> None:
    [warning] = _submit(caller, prompts=LIST).json()["warnings"]
    assert (warning["field"], warning["index"], warning["words"]) == ("prompts", 2, ["unicorn", "moon"])
    [single] = _submit(caller, prompt="a cat astronaut on the moon").json()["warnings"]
    assert (single["field"], single["index"], single["words"]) == ("prompt", None, ["cat", "astronaut", "moon"])
    assert _submit(caller, prompt="a large purple triangle at the bottom").json()["warnings"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": "a", "prompts": ["b"]}, "prompts"),
    ({}, "prompts"),
    ({"prompts": []}, "prompts"),
    ({"prompts": ["a"] * 9}, "prompts"),
    ({"prompts": ["a red circle", "  "]}, "prompts.1"),
    ({"prompts": ["x" * 1001]}, "prompts.0"),
    ({"prompts": ["a", "b"], "n": 3}, "n"),
    ({"prompts": "a red circle"}, "prompts"),
])
def test_bad_prompt_lists_are_422_naming_the_field(caller, db, body, field) -> None:
    response = _submit(caller, **body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] == field
    assert db.query(Generation).count() == 0


def test_a_list_with_its_own_length_as_n_is_fine(caller) -> None:
    assert _submit(caller, prompts=["a", "b"], n=2).status_code == 202


@pytest.mark.slow
def test_each_png_of_a_prompt_list_carries_its_own_prompt(worker, caller) -> None:
    from tests.generation.conftest import wait_final
    from workers.engine import read_parameters

    submitted = _submit(caller, prompts=["a red circle", "a blue star"], steps=2, seed=40).json()
    job, _ = wait_final(caller, submitted["id"])
    assert job["status"] == "succeeded", worker.log()[-3000:]
    assert [(image["prompt"], image["seed"]) for image in job["images"]] == [("a red circle", 40), ("a blue star", 41)]
    for image in job["images"]:
        download = caller.get(image["url"])
        assert read_parameters(download.content).prompt == image["prompt"]
        assert f'{image["prompt"].replace(" ", "-")}-{image["seed"]}.png' in download.headers["content-disposition"]
