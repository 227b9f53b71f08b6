"""GET /api/v1/models/{id}/download: a LoRA in both formats, a full fine-tune as a complete
diffusers folder that loads, and nothing for anyone but the owner."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from app import storage
from app.personalization.models import ModelKind, TrainedModel

pytestmark = pytest.mark.backend_independent  # files and one query; the catalog's queries run on both elsewhere


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from workers.engine.tiny_model import write_tiny_pipeline

    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny-download") / "base")


@pytest.fixture
def owner(client, accounts, env_override, tiny_base):
    env_override(MODEL_PATH=str(tiny_base))
    return accounts.signup(client)


def _model(db, user_id: str, method: str, write) -> TrainedModel:
    row = TrainedModel(user_id=user_id, name="My Smiley!", kind=ModelKind.PERSONAL, token="sks", class_noun="circle",
                       method=method, path="pending")
    db.add(row)
    db.flush()
    row.path = f"models/{user_id}/{row.id}"
    write(storage.resolve(row.path))
    db.commit()
    return row


def _lora(tiny_base, with_kohya: bool = True):
    from workers.engine.tiny_model import write_lora

    def write(folder: Path) -> None:
        write_lora(tiny_base, folder, with_text_encoder=True)
        if with_kohya:
            (folder / "lora_kohya.safetensors").write_bytes(b"the kohya file the fine-tune wrote")
    return write


def test_a_lora_downloads_as_trained_and_in_the_kohya_layout(client, owner, db, tiny_base) -> None:
    model = _model(db, owner["id"], "lora", _lora(tiny_base))
    folder = storage.resolve(model.path)
    trained = client.get(f"/api/v1/models/{model.id}/download")  # diffusers is the default
    assert trained.status_code == 200 and trained.content == (folder / "pytorch_lora_weights.safetensors").read_bytes()
    assert trained.headers["content-disposition"] == 'attachment; filename="My-Smiley-diffusers.safetensors"'
    kohya = client.get(f"/api/v1/models/{model.id}/download", params={"format": "kohya"})
    assert kohya.status_code == 200 and kohya.content == (folder / "lora_kohya.safetensors").read_bytes()
    assert kohya.headers["content-type"] == "application/octet-stream"


def test_a_full_finetune_downloads_as_a_diffusers_folder_that_loads(client, owner, db, tiny_base, tmp_path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    from workers.engine.tiny_model import write_full_finetune

    model = _model(db, owner["id"], "full", lambda folder: write_full_finetune(tiny_base, folder, scale=1.05))
    answer = client.get(f"/api/v1/models/{model.id}/download", params={"format": "diffusers"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    assert "My-Smiley/model_index.json" in names and "My-Smiley/vae/diffusion_pytorch_model.safetensors" in names
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "My-Smiley", local_files_only=True)
    tuned = UNet2DConditionModel.from_pretrained(storage.resolve(model.path) / "unet").state_dict()
    assert all(torch.equal(value, tuned[name]) for name, value in pipe.unet.state_dict().items())  # its own UNet
    assert answer.headers["content-disposition"] == 'attachment; filename="My-Smiley-diffusers.zip"'


def test_what_cannot_be_downloaded_says_why(client, owner, db, tiny_base) -> None:
    from workers.engine.tiny_model import write_full_finetune

    full = _model(db, owner["id"], "full", lambda folder: write_full_finetune(tiny_base, folder, scale=1.05))
    assert client.get(f"/api/v1/models/{full.id}/download?format=kohya").json()["error"]["code"] == "format_unavailable"
    old_lora = _model(db, owner["id"], "lora", _lora(tiny_base, with_kohya=False))
    answer = client.get(f"/api/v1/models/{old_lora.id}/download?format=kohya")
    assert answer.status_code == 409 and "diffusers" in answer.json()["error"]["message"]
    assert client.get(f"/api/v1/models/{old_lora.id}/download?format=ckpt").status_code == 422
    lost = _model(db, owner["id"], "full", lambda folder: folder.mkdir(parents=True))
    assert client.get(f"/api/v1/models/{lost.id}/download").status_code == 410


def test_only_the_owner_can_download(make_client, accounts, owner, client, db, tiny_base) -> None:
    model = _model(db, owner["id"], "lora", _lora(tiny_base))
    stranger = make_client()
    accounts.signup(stranger)
    answer = stranger.get(f"/api/v1/models/{model.id}/download")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"
    base_id = client.get("/api/v1/models").json()[0]["id"]
    assert client.get(f"/api/v1/models/{base_id}/download").status_code == 404  # base models are not personal
    assert make_client().get(f"/api/v1/models/{model.id}/download").status_code == 401
