"""The job lifecycle through a real Celery worker running the tiny random model: progress,
PNGs with parameters, reproducible seeds, cancel, failure, re-delivery, a killed worker and a
broker that is down at submit - with the credits each of them leaves."""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest
from PIL import Image as PILImage

from app.generation.models import Generation, Image
from app.model_base import JobStatus
from app.personalization.models import ModelKind, TrainedModel
from tests.generation.conftest import wait_final, wait_status

pytestmark = pytest.mark.slow
PROMPT = "a red circle on the left, blue background"
# Long enough on the tiny model to be seen running and stopped mid-way (~ seconds).
LONG_JOB = {"prompt": "a long one", "n": 4, "steps": 100}


def _submit(client, **fields) -> str:
    response = client.post("/api/v1/generations", json={"prompt": PROMPT, **fields})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))


def test_submit_progress_succeed_and_download(worker, caller) -> None:
    from workers.engine import read_parameters

    job_id = _submit(caller, n=2, steps=6, seed=1234, guidance_scale=5, negative_prompt="blurry, dark")
    body, seen = wait_final(caller, job_id)
    assert body["status"] == "succeeded", (body, worker.log()[-3000:])
    assert body["progress"] == 1 and body["error"] is None and body.get("queue_position") is None
    progress = [item["progress"] for item in seen]
    assert progress == sorted(progress)
    assert [image["seed"] for image in body["images"]] == [1234, 1235]
    for image in body["images"]:
        response = caller.get(image["url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment") and f"a-red-circle-on-the-left-blue-background-{image['seed']}.png" in disposition
        params = read_parameters(response.content)
        assert (params.prompt, params.negative_prompt, params.seed, params.steps) == (PROMPT, "blurry, dark", image["seed"], 6)
        assert params.cfg_scale == 5.0 and params.model == "tiny-sd" and params.sampler == "UniPC"
        assert (params.width, params.height) == (32, 32) == (image["width"], image["height"])
    archive = caller.get(f"/api/v1/generations/{job_id}/archive")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    assert archive.headers["content-disposition"] == 'attachment; filename="a-red-circle-on-the-left-blue-background.zip"'
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        names = bundle.namelist()
        assert names == ["01-a-red-circle-on-the-left-blue-background-1234.png",
                         "02-a-red-circle-on-the-left-blue-background-1235.png"]
        assert bundle.read(names[0]) == caller.get(body["images"][0]["url"]).content
    history = caller.get("/api/v1/generations").json()["items"]
    assert history[0]["id"] == job_id and len(history[0]["images"]) == 2


def test_same_seed_reproduces_the_same_image(worker, caller) -> None:
    first = wait_final(caller, _submit(caller, n=2, steps=4, seed=77))[0]
    repeat = wait_final(caller, _submit(caller, n=2, steps=4, seed=77))[0]
    alone = wait_final(caller, _submit(caller, n=1, steps=4, seed=78))[0]  # image 2 of the batch alone
    assert first["status"] == repeat["status"] == alone["status"] == "succeeded"
    for ours, theirs in zip(first["images"], repeat["images"]):
        assert caller.get(ours["url"]).content == caller.get(theirs["url"]).content  # pixels and chunk
    batch_second = _pixels(caller.get(first["images"][1]["url"]).content).astype(int)
    by_itself = _pixels(caller.get(alone["images"][0]["url"]).content).astype(int)
    # Batched kernels round differently from batch-1 ones: equal up to a couple of levels.
    assert np.abs(batch_second - by_itself).max() <= 2
    batch_first = _pixels(caller.get(first["images"][0]["url"]).content).astype(int)
    assert np.abs(batch_first - by_itself).max() > 2


def test_progress_is_reported_while_running(worker, caller) -> None:
    job_id = _submit(caller, **LONG_JOB)
    _, seen = wait_final(caller, job_id)
    running = [item["progress"] for item in seen if item["status"] == "running"]
    assert any(0 < value < 1 for value in running), seen
    assert seen[-1]["status"] == "succeeded" and len(seen[-1]["images"]) == 4


def _free_credits(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["free_remaining"]


def test_cancel_running_and_queued_jobs_refunds_both(worker, caller, db) -> None:
    start = _free_credits(caller)
    running_id = _submit(caller, **LONG_JOB)
    queued_id = _submit(caller)
    wait_status(caller, running_id, "running")
    assert caller.get(f"/api/v1/generations/{queued_id}").json()["queue_position"] == 1
    queued = caller.post(f"/api/v1/generations/{queued_id}/cancel")
    assert queued.status_code == 200 and queued.json()["status"] == "canceled"
    running = caller.post(f"/api/v1/generations/{running_id}/cancel")
    assert running.status_code == 200 and running.json()["status"] == "canceled"
    # The worker stops at its next step and is free for the next job.
    after = wait_final(caller, _submit(caller, steps=2))[0]
    assert after["status"] == "succeeded" and _wait_settled(db, after["id"])
    db.expire_all()
    stopped = db.get(Generation, running_id)
    assert stopped.status == JobStatus.CANCELED and stopped.progress < 1 and stopped.images == []
    never_ran = db.get(Generation, queued_id)
    assert never_ran.status == JobStatus.CANCELED and never_ran.started_at is None
    assert _free_credits(caller) == start - after["cost"]  # only the last job's picture was paid for


def test_a_broken_model_fails_the_job_with_a_message_and_a_refund(worker, caller, db, tmp_path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "unet").mkdir()  # no config, no weights
    user_id = caller.get("/api/v1/me").json()["id"]
    model = TrainedModel(user_id=user_id, name="broken", kind=ModelKind.PERSONAL, path=str(broken))
    db.add(model)
    db.commit()
    start = _free_credits(caller)
    job_id = _submit(caller, model=model.id, n=3)
    body = wait_final(caller, job_id)[0]
    assert body["status"] == "failed" and body["images"] == []
    assert body["error"] == "The model could not be loaded: its files are missing or damaged."
    assert _wait_settled(db, job_id) and _free_credits(caller) == start
    assert wait_final(caller, _submit(caller, steps=2))[0]["status"] == "succeeded"  # worker still fine


def test_a_personal_model_generates_on_its_base(worker, caller, db, tiny_model, tmp_path) -> None:
    import shutil

    from workers.engine import read_parameters

    personal = tmp_path / "my-model"
    shutil.copytree(tiny_model / "unet", personal / "unet")  # a "full fine-tune" of the UNet
    user_id = caller.get("/api/v1/me").json()["id"]
    base_id = caller.get("/api/v1/models").json()[0]["id"]
    model = TrainedModel(user_id=user_id, name="my model", kind=ModelKind.PERSONAL, token="sks",
                         class_noun="dog", path=str(personal), base_model_id=base_id)
    db.add(model)
    db.commit()
    body = wait_final(caller, _submit(caller, model=model.id, steps=3, seed=9))[0]
    assert body["status"] == "succeeded" and body["model"] == model.id, body
    png = caller.get(body["images"][0]["url"]).content
    assert read_parameters(png).model == "my model"
    # Same weights as the base: the same picture as the base model gives for that seed.
    base = wait_final(caller, _submit(caller, steps=3, seed=9))[0]
    assert np.array_equal(_pixels(png), _pixels(caller.get(base["images"][0]["url"]).content))


def test_redelivered_tasks_are_idempotent(worker, caller, db) -> None:
    from app.queue import enqueue

    done = wait_final(caller, _submit(caller, n=2, steps=3, seed=5))[0]
    enqueue("generation.run", done["id"])  # a finished job: nothing happens
    # A job queued again after its worker was lost, with one stale image row: re-run cleanly.
    job_id = _submit(caller, n=2, steps=3, seed=5)
    wait_final(caller, job_id)
    db.query(Generation).filter_by(id=job_id).update(
        {"status": JobStatus.QUEUED, "progress": 0.0, "finished_at": None})
    db.query(Image).filter_by(generation_id=job_id, index=1).update({"seed": 999})
    db.commit()
    enqueue("generation.run", job_id)
    rerun = wait_final(caller, job_id)[0]
    assert rerun["status"] == "succeeded" and [i["seed"] for i in rerun["images"]] == [5, 6]
    assert caller.get(f"/api/v1/generations/{done['id']}").json() == done
    assert db.query(Image).filter_by(generation_id=job_id).count() == 2
    db.expire_all()
    assert db.get(Generation, job_id).attempts == 2


def test_a_long_poll_answers_each_change(worker, caller) -> None:
    # How fast the answer comes is measured in bench/generation.py (finish -> client).
    job_id = _submit(caller, steps=2)
    seen = [caller.get(f"/api/v1/generations/{job_id}").json()]
    while seen[-1]["status"] not in ("succeeded", "failed"):
        seen.append(caller.get(f"/api/v1/generations/{job_id}", params={"wait": 20}).json())
        assert (seen[-1]["status"], seen[-1]["progress"]) != (seen[-2]["status"], seen[-2]["progress"]), seen
    assert seen[-1]["status"] == "succeeded"


def test_a_killed_workers_job_runs_again_on_the_next_and_is_charged_once(worker, caller, db) -> None:
    start = _free_credits(caller)
    job_id = _submit(caller, **LONG_JOB)
    wait_status(caller, job_id, "running")
    worker.kill()
    worker.start()  # its reconciler queues the job again once the heartbeat is stale
    body = wait_final(caller, job_id)[0]
    assert body["status"] == "succeeded" and len(body["images"]) == 4, (body, worker.log()[-3000:])
    db.expire_all()
    assert db.get(Generation, job_id).attempts == 2
    assert _wait_settled(db, job_id) and _free_credits(caller) == start - body["cost"]  # all 4 pictures, once


def test_a_job_accepted_while_the_broker_was_down_is_sent_by_the_outbox(worker, caller, db) -> None:
    from tests.outage import post_with, unreachable_url

    key = caller.headers["Authorization"].removeprefix("Bearer ")
    reply = post_with({"broker_url": unreachable_url()}, key, "/api/v1/generations", {"prompt": PROMPT, "steps": 2})
    assert reply.status == 202, reply
    body = wait_final(caller, reply.body["id"])[0]  # the worker's reconciler sent it
    assert body["status"] == "succeeded", worker.log()[-3000:]
    db.expire_all()
    assert db.get(Generation, reply.body["id"]).dispatches == 1


def _wait_settled(db, job_id: str, timeout: float = 30) -> bool:
    """Settlement follows the outcome in a step of its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.expire_all()
        if db.get(Generation, job_id).settled_at is not None:
            return True
        time.sleep(0.1)
    return False
