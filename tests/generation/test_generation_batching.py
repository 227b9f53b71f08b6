"""Batches of jobs through a real worker (the tiny random model): jobs queued together run in
one UNet batch, and each keeps its own progress, cancel, pictures, PNG parameters and charge."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from app.generation.models import Generation
from tests.generation.conftest import wait_final, wait_status

pytestmark = pytest.mark.slow
BLOCKER = {"prompt": "a long one", "n": 8, "steps": 100}  # holds the worker until canceled


@pytest.fixture
def users(make_client, accounts):
    """API-key clients, one per user."""

    def make():
        client = make_client()
        accounts.signup(client)
        key = accounts.api_key(client)["key"]
        client.cookies.clear()
        client.headers["Authorization"] = f"Bearer {key}"
        return client

    return make


def _submit(client, **fields) -> str:
    body = fields if "prompts" in fields else {"prompt": "a red circle", **fields}
    response = client.post("/api/v1/generations", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _queue_behind_a_blocker(users, jobs: list[dict]) -> list[tuple[object, str]]:
    """Submit `jobs` (one user each) while another user's job holds the worker, then cancel
    that one: the worker finds them all queued and takes them as one batch."""
    holder = users()
    blocker = _submit(holder, **BLOCKER)
    wait_status(holder, blocker, "running")
    submitted = [(client, _submit(client, **fields)) for client, fields in ((users(), job) for job in jobs)]
    assert holder.post(f"/api/v1/generations/{blocker}/cancel").json()["status"] == "canceled"
    return submitted


def _free(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["free_remaining"]


def _pixels(client, image: dict) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(client.get(image["url"]).content)).convert("RGB")).astype(int)


def _batch_of(db, job_ids: list[str]) -> set:
    """The claim time of each job: a batch is claimed in one transaction."""
    db.expire_all()
    return {db.get(Generation, job_id).started_at for job_id in job_ids}


def test_batched_jobs_keep_their_own_progress_pictures_parameters_and_charges(worker, users, db) -> None:
    from workers.engine import read_parameters

    jobs = [dict(n=2, seed=10, steps=30), dict(prompt="a blue star", negative_prompt="green", seed=20, steps=30),
            dict(prompts=["a yellow square", "a white circle"], seed=30, steps=30)]
    submitted = _queue_behind_a_blocker(users, jobs)
    starts = [_free(client) for client, _ in submitted]
    finals = [wait_final(client, job_id) for client, job_id in submitted]
    assert len(_batch_of(db, [job_id for _, job_id in submitted])) == 1, worker.log()[-3000:]  # one batch
    for (client, _), (body, seen), fields, start in zip(submitted, finals, jobs, starts, strict=True):
        assert body["status"] == "succeeded", body
        progress = [view["progress"] for view in seen]
        assert progress == sorted(progress) and progress[-1] == 1
        assert [image["seed"] for image in body["images"]] == [fields["seed"] + k for k in range(len(body["images"]))]
        for image in body["images"]:
            params = read_parameters(client.get(image["url"]).content)
            assert (params.prompt, params.seed, params.steps) == (image["prompt"], image["seed"], 30)
            assert params.negative_prompt == fields.get("negative_prompt", "")
        assert _free(client) == start  # charged at submit: settlement kept exactly its own cost
        assert client.get("/api/v1/credits/activity").json()["items"][0]["spent"] == body["cost"]
    db.expire_all()
    assert db.get(Generation, submitted[0][1]).image_step_s > 0  # the pace the queue's estimate uses
    # the same request alone, with the same seed: the same picture (bf16 kernels: within 2 levels)
    client, _ = submitted[1]
    alone = wait_final(client, _submit(client, **jobs[1]))[0]
    assert np.abs(_pixels(client, alone["images"][0]) - _pixels(client, finals[1][0]["images"][0])).max() <= 2


def test_a_canceled_job_leaves_the_batch_without_disturbing_the_others(worker, users, db) -> None:
    jobs = [dict(seed=1, steps=100), dict(seed=2, steps=100), dict(seed=3, steps=100)]
    submitted = _queue_behind_a_blocker(users, jobs)
    starts = [_free(client) for client, _ in submitted]
    (first, first_id), (middle, middle_id), (last, last_id) = submitted
    wait_status(middle, middle_id, "running")
    canceled = middle.post(f"/api/v1/generations/{middle_id}/cancel").json()
    assert canceled["status"] == "canceled" and canceled["progress"] < 1
    bodies = [wait_final(client, job_id)[0] for client, job_id in submitted]
    assert [body["status"] for body in bodies] == ["succeeded", "canceled", "succeeded"]
    assert len(_batch_of(db, [first_id, middle_id, last_id])) == 1
    assert bodies[1]["images"] == [] and _free(middle) == starts[1] + bodies[1]["cost"]  # its credits back
    assert _free(first) == starts[0] and _free(last) == starts[2]
    # the others' pictures are the ones they get alone
    alone = wait_final(last, _submit(last, **jobs[2]))[0]
    assert np.abs(_pixels(last, alone["images"][0]) - _pixels(last, bodies[2]["images"][0])).max() <= 2
