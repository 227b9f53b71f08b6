"""The vocabulary as clients see it: in GET /api/v1/models and POST /api/v1/vocabulary/check."""

from __future__ import annotations

import json

from app.personalization.models import ModelKind, TrainedModel


def _check(client, accounts, **body):
    return client.post("/api/v1/vocabulary/check", json=body, headers=accounts.csrf(client))


def test_the_base_model_lists_what_it_draws(client, accounts) -> None:
    accounts.signup(client)
    [base] = client.get("/api/v1/models").json()
    vocabulary = base["vocabulary"]
    assert vocabulary["groups"]["shapes"] == ["circle", "square", "triangle", "star"]
    assert vocabulary["classes"] == ["circle", "square", "triangle", "star"]
    assert "on the left" in vocabulary["groups"]["positions"] and vocabulary["example"]


def test_unknown_words_are_named_per_prompt(client, accounts) -> None:
    accounts.signup(client)
    [warning] = _check(client, accounts, prompt="a cat astronaut on the moon").json()["warnings"]
    assert (warning["code"], warning["field"], warning["words"], warning["index"]) == (
        "unknown_words", "prompt", ["cat", "astronaut", "moon"], None)
    assert _check(client, accounts, prompt="A small blue star on the left on a yellow background.").json() == {
        "warnings": []}
    listed = _check(client, accounts, prompts=["a red circle", "a purple unicorn"]).json()["warnings"]
    assert [(item["field"], item["index"], item["words"]) for item in listed] == [("prompts", 1, ["unicorn"])]


def test_a_class_noun_outside_the_models_classes_is_named(client, accounts) -> None:
    accounts.signup(client)
    [warning] = _check(client, accounts, class_noun="dog").json()["warnings"]
    assert (warning["code"], warning["field"], warning["words"]) == ("unknown_class", "class_noun", ["dog"])
    assert _check(client, accounts, class_noun="Star").json() == {"warnings": []}


def test_a_personal_model_knows_its_token_and_others_are_not_found(client, make_client, accounts, db) -> None:
    user_id = accounts.signup(client)["id"]
    mine = TrainedModel(user_id=user_id, name="my smiley", kind=ModelKind.PERSONAL, token="zwx", class_noun="circle",
                        method="lora", path="models/x")
    db.add(mine)
    db.commit()
    assert _check(client, accounts, model=mine.id, prompt="a zwx circle on the left").json() == {"warnings": []}
    [warning] = _check(client, accounts, prompt="a zwx circle").json()["warnings"]  # the base does not know it
    assert warning["words"] == ["zwx"]
    other = make_client()
    accounts.signup(other)
    assert _check(other, accounts, model=mine.id, prompt="a zwx circle").status_code == 404


def test_a_model_without_a_vocabulary_warns_about_nothing(client, accounts, env_override, tmp_path) -> None:
    (tmp_path / "imagebooth_model.json").write_text(json.dumps({"name": "sd-like", "steps": 20}))
    env_override(MODEL_PATH=str(tmp_path))
    accounts.signup(client)
    assert client.get("/api/v1/models").json()[0]["vocabulary"] is None
    assert _check(client, accounts, prompt="a cat astronaut on the moon", class_noun="dog").json() == {"warnings": []}


def test_bad_checks_are_422(client, accounts) -> None:
    accounts.signup(client)
    assert _check(client, accounts, prompt="a", prompts=["b"]).status_code == 422
    assert _check(client, accounts, prompts=[]).status_code == 422
    assert _check(client, accounts, prompts=["a"] * 9).status_code == 422
    assert _check(client, accounts, prompt="x" * 1001).status_code == 422
