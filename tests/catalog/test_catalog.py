"""GET/DELETE /api/v1/models and resolve_model: the base model and each user's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog import service
from app.config import get_settings
from app.personalization.models import ModelKind, TrainedModel


def _personal(db, user_id: str, path: str, name: str = "my dog", base_model_id: str | None = None) -> TrainedModel:
    row = TrainedModel(user_id=user_id, name=name, kind=ModelKind.PERSONAL, token="sks", class_noun="dog",
                       method="lora", path=path, base_model_id=base_model_id)
    db.add(row)
    db.commit()
    return row


def test_lists_the_base_model_once_however_often_asked(client, accounts, db) -> None:
    accounts.signup(client)
    first = client.get("/api/v1/models").json()
    assert client.get("/api/v1/models").json() == first
    (base,) = first
    assert base["kind"] == "base" and base["token"] is None
    assert base["id"] == service.base_model_id(get_settings().model_path)
    assert db.query(TrainedModel).filter_by(kind=ModelKind.BASE).count() == 1


def test_users_see_only_their_own_models(make_client, accounts, db) -> None:
    alice, bob = make_client(), make_client()
    alice_id = accounts.signup(alice)["id"]
    accounts.signup(bob)
    mine = _personal(db, alice_id, "models/alice/dog")
    listed = alice.get("/api/v1/models").json()
    assert [m["kind"] for m in listed] == ["base", "personal"]
    assert listed[1] | {"created_at": None, "cost_per_picture": None, "vocabulary": None} == {
        "id": mine.id, "name": "my dog", "kind": "personal", "token": "sks", "class_noun": "dog",
        "base_model_id": None, "created_at": None, "cost_per_picture": None, "vocabulary": None}
    assert [m["kind"] for m in bob.get("/api/v1/models").json()] == ["base"]


def test_delete_own_model_only(make_client, accounts, db) -> None:
    alice, bob = make_client(), make_client()
    alice_id = accounts.signup(alice)["id"]
    accounts.signup(bob)
    folder = get_settings().storage_dir / "models" / alice_id / "dog"
    folder.mkdir(parents=True)
    (folder / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    mine = _personal(db, alice_id, f"models/{alice_id}/dog")
    base_id = alice.get("/api/v1/models").json()[0]["id"]
    assert bob.delete(f"/api/v1/models/{mine.id}", headers=accounts.csrf(bob)).status_code == 404
    protected = alice.delete(f"/api/v1/models/{base_id}", headers=accounts.csrf(alice))
    assert protected.status_code == 403 and protected.json()["error"]["code"] == "model_protected"
    assert alice.delete(f"/api/v1/models/{mine.id}", headers=accounts.csrf(alice)).status_code == 204
    assert [m["kind"] for m in alice.get("/api/v1/models").json()] == ["base"]
    assert not folder.exists()
    assert alice.delete(f"/api/v1/models/{mine.id}", headers=accounts.csrf(alice)).status_code == 404


def test_resolve_model(client, accounts, db) -> None:
    alice_id = accounts.signup(client)["id"]
    other_id = accounts.signup(client)["id"]
    settings = get_settings()
    base = service.resolve_model(db, alice_id, None)
    assert base.personal_path is None and base.base_path == settings.model_path
    assert service.resolve_model(db, alice_id, base.id) == base
    lora = _personal(db, alice_id, "models/a/dog", base_model_id=base.id)
    resolved = service.resolve_model(db, alice_id, lora.id)
    assert resolved.base_path == settings.model_path
    assert resolved.personal_path == settings.storage_dir / "models" / "a" / "dog"
    assert (resolved.id, resolved.name) == (lora.id, "my dog")
    absolute = _personal(db, alice_id, "/srv/models/cat", name="cat")
    assert service.resolve_model(db, alice_id, absolute.id).personal_path == Path("/srv/models/cat")
    for user_id, model_id in ((other_id, lora.id), (alice_id, "f" * 32)):
        with pytest.raises(service.ModelNotFound):
            service.resolve_model(db, user_id, model_id)


def test_model_card_defaults_are_read_from_the_base_folder(client, accounts, db, env_override, tmp_path) -> None:
    (tmp_path / "imagebooth_model.json").write_text('{"name": "shapes-v1", "steps": 6, "guidance_scale": 3.0}')
    env_override(MODEL_PATH=str(tmp_path))
    user_id = accounts.signup(client)["id"]
    resolved = service.resolve_model(db, user_id, None)
    assert (resolved.name, resolved.default_steps, resolved.default_guidance) == ("shapes-v1", 6, 3.0)
