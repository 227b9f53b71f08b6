"""Prices that follow compute: pictures x steps (and size on larger models), rounded up, the
fast default at 1 credit a picture; quoted before submitting, returned in the 202, and
settled for the pictures made."""

from __future__ import annotations

import json

import pytest

from app.credits import pricing
from app.generation.models import Generation, Image
from app.jobs import lifecycle, repository
from app.jobs.kinds import GENERATION
from app.model_base import JobStatus

BUNDLED_STEPS = 4  # models/shapes-v1's card


def submit(client, accounts, **body):
    return client.post("/api/v1/generations", json={"prompt": "a red circle", **body}, headers=accounts.csrf(client))


def free_remaining(client) -> int:
    return client.get("/api/v1/me").json()["credits"]["free_remaining"]


def diffusers_folder(root, sample_size: int, vae_blocks: int):
    (root / "unet").mkdir(parents=True)
    (root / "vae").mkdir()
    (root / "unet" / "config.json").write_text(json.dumps({"sample_size": sample_size}))
    (root / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [64] * vae_blocks}))
    return root


@pytest.mark.parametrize(("steps", "per_picture"), [(4, 1), (1, 1), (5, 2), (8, 2), (25, 7), (100, 25)])
def test_the_cost_follows_the_steps_rounded_up(steps, per_picture, client, accounts) -> None:
    accounts.signup(client)
    n = 1 if per_picture > 12 else 2  # within the daily 25
    response = submit(client, accounts, n=n, steps=steps)
    assert response.status_code == 202, response.text
    assert response.json()["cost"] == n * per_picture
    assert free_remaining(client) == 25 - n * per_picture  # what the 202 says is what is held


def test_the_fast_default_costs_the_image_price_and_quality_its_steps(client, accounts, env_override) -> None:
    accounts.signup(client)
    assert submit(client, accounts, n=3).json()["cost"] == 3
    env_override(FREE_MAX_ACTIVE_JOBS="5", IMAGE_CREDIT_COST="2")
    assert submit(client, accounts, n=3).json()["cost"] == 6
    assert submit(client, accounts, profile="quality").json()["cost"] == -(-2 * 25 // BUNDLED_STEPS)


def test_the_create_page_quote_is_the_charge(client, accounts, env_override) -> None:
    """GET /api/v1/models quotes each profile's price per picture; a submission charges exactly that."""
    env_override(FREE_MAX_ACTIVE_JOBS="5")
    accounts.signup(client)
    (base,) = client.get("/api/v1/models").json()
    for profile in ("fast", "quality"):
        charged = submit(client, accounts, n=3, profile=profile).json()["cost"]
        assert charged == 3 * base["cost_per_picture"][profile]
    assert base["cost_per_picture"]["quality"] > base["cost_per_picture"]["fast"]


def test_larger_models_pay_for_their_size(tmp_path) -> None:
    small = diffusers_folder(tmp_path / "sd15", sample_size=64, vae_blocks=4)  # 512 x 512
    xl = diffusers_folder(tmp_path / "sdxl", sample_size=128, vae_blocks=4)  # 1024 x 1024
    tiny = diffusers_folder(tmp_path / "tiny", sample_size=8, vae_blocks=2)  # 16 x 16
    assert [pricing.native_pixels(folder) for folder in (small, xl, tiny)] == [512 * 512, 1024 * 1024, 16 * 16]
    assert pricing.generation_cost(small, 30, 2, 30) == 2
    assert pricing.generation_cost(xl, 30, 2, 30) == 8
    assert pricing.generation_cost(tiny, 30, 2, 45) == 4  # 1.5 a picture, rounded up
    assert pricing.native_pixels(tmp_path / "single-file.safetensors") == pricing.REFERENCE_PIXELS


def test_settlement_charges_the_pictures_made(client, accounts, db) -> None:
    accounts.signup(client)
    job = submit(client, accounts, n=4, steps=8).json()  # 2 credits a picture
    assert job["cost"] == 8 and free_remaining(client) == 17
    generation = db.get(Generation, job["id"])
    generation.images = [Image(user_id=generation.user_id, index=k, seed=k, path=f"x/{k}.png", width=8, height=8)
                         for k in range(3)]
    lifecycle.finish(db, GENERATION, generation.id, JobStatus.SUCCEEDED, repository.ACTIVE)
    db.commit()  # settled after the commit
    assert free_remaining(client) == 25 - 6
    assert pricing.charge_for_pictures(8, 4, 0) == 0 and pricing.charge_for_pictures(8, 4, 9) == 8


def test_a_canceled_job_refunds_everything(client, accounts, db) -> None:
    accounts.signup(client)
    job = submit(client, accounts, n=2, steps=40).json()
    assert free_remaining(client) == 5
    lifecycle.cancel(db, GENERATION, job["id"])
    db.commit()
    assert free_remaining(client) == 25


def test_fine_tunes_cost_more_only_beyond_the_steps_their_price_covers(env_override) -> None:
    env_override(FINETUNE_CREDIT_COST="20", FINETUNE_CREDIT_STEPS="800")
    assert [pricing.finetune_cost(steps) for steps in (None, 60, 800, 801, 2000)] == [20, 20, 20, 21, 50]
