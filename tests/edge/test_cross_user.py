"""Another user's real objects answer 404 on every route, exactly like missing ones: a
generation with its stored image, a subject, and a succeeded fine-tune with its personal
model and validation picture - all first shown to work for their owner."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from app import storage
from app.generation.models import Generation, Image
from app.model_base import JobStatus, new_id
from app.personalization.models import Finetune, FinetunePhase, ModelKind, Subject, TrainedModel

HTML = {"accept": "text/html"}


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def owned(db, make_client, accounts) -> dict:
    """User A's client and ids of A's generation, image, subject, fine-tune and model."""
    owner = make_client()
    user_id = accounts.signup(owner)["id"]
    # 1. a succeeded generation whose image is a real file in storage
    job = Generation(id=new_id(), user_id=user_id, prompt="a red circle", n=1, steps=8, guidance_scale=7.5,
                     seed=1, model_id=new_id(), status=JobStatus.SUCCEEDED, progress=1.0)
    image = Image(id=new_id(), generation_id=job.id, user_id=user_id, index=0, seed=1,
                  path=f"images/{user_id}/{job.id}/0.png", width=64, height=64)
    storage.write_bytes(image.path, png_bytes((220, 40, 40)))
    # 2. a subject, and a succeeded fine-tune whose personal model lists a validation picture
    subject = Subject(id=new_id(), user_id=user_id, name="Rex", class_noun="circle", token="sks")
    model = TrainedModel(id=new_id(), user_id=user_id, name="Rex", kind=ModelKind.PERSONAL, token="sks",
                         class_noun="circle", method="lora", path=f"models/{user_id}/rex",
                         metrics={"validation": [{"prompt": "a sks circle", "file": "validation-0.png"}]})
    storage.write_bytes(f"{model.path}/validation-0.png", png_bytes((40, 80, 220)))
    finetune = Finetune(id=new_id(), user_id=user_id, subject_id=subject.id, status=JobStatus.SUCCEEDED,
                        phase=FinetunePhase.DONE, progress=1.0, trained_model_id=model.id)
    db.add_all([job, image, subject, model])
    db.flush()
    db.add(finetune)
    db.commit()
    return {"client": owner, "job": job.id, "image": image.id, "subject": subject.id,
            "finetune": finetune.id, "model": model.id}


def reads(ids: dict) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/generations/{ids['job']}"),
        ("GET", f"/api/v1/generations/{ids['job']}/archive"),
        ("GET", f"/api/v1/images/{ids['image']}"),
        ("GET", f"/api/v1/subjects/{ids['subject']}"),
        ("GET", f"/api/v1/finetunes/{ids['finetune']}"),
        ("GET", f"/finetunes/{ids['finetune']}"),
        ("GET", f"/finetunes/{ids['finetune']}/validation/0"),
    ]


def test_the_owner_reaches_every_object(owned) -> None:
    owner = owned["client"]
    for method, path in reads(owned):
        response = owner.request(method, path, headers=HTML)
        assert response.status_code == 200, (path, response.text[:200])
    assert owner.get(f"/api/v1/images/{owned['image']}").content == png_bytes((220, 40, 40))
    assert owner.get(f"/finetunes/{owned['finetune']}/validation/0").content == png_bytes((40, 80, 220))
    assert owned["model"] in {model["id"] for model in owner.get("/api/v1/models").json()}


def test_another_user_gets_404_for_every_real_object(owned, make_client, accounts) -> None:
    other = make_client()
    accounts.signup(other)
    csrf = accounts.csrf(other)
    for method, path in reads(owned):
        response = other.request(method, path, headers=HTML)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text
    writes = [
        ("POST", f"/api/v1/generations/{owned['job']}/cancel", None),
        ("POST", f"/api/v1/subjects/{owned['subject']}/finetunes", {}),
        ("POST", f"/api/v1/finetunes/{owned['finetune']}/cancel", None),
        ("DELETE", f"/api/v1/models/{owned['model']}", None),
        ("POST", "/api/v1/generations", {"prompt": "a sks circle", "model": owned["model"]}),
    ]
    for method, path, body in writes:
        response = other.request(method, path, json=body, headers=csrf)
        assert response.status_code == 404, (path, response.text)
    assert owned["model"] not in {model["id"] for model in other.get("/api/v1/models").json()}
    # and nothing of the owner's changed
    owner = owned["client"]
    assert owner.get(f"/api/v1/generations/{owned['job']}").json()["status"] == "succeeded"
    assert owner.get(f"/finetunes/{owned['finetune']}/validation/0").status_code == 200
