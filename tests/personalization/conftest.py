"""Fixtures for the personalization tests: a signed-up user, uploads, and what was stored."""

from __future__ import annotations

import pytest
from personalization_checks import row_counts, stored_uploads
from upload_samples import files, good_photos


@pytest.fixture(autouse=True)
def empty_uploads() -> None:
    """Storage outlives a test; uploads start empty so "nothing stored" can be checked."""
    import shutil

    from app.config import get_settings

    shutil.rmtree(get_settings().storage_dir / "uploads", ignore_errors=True)


@pytest.fixture
def user(client, accounts) -> dict:
    """A signed-up user whose client sends an API key (no CSRF header needed)."""
    me = accounts.signup(client)
    client.headers["Authorization"] = f"Bearer {accounts.api_key(client)['key']}"
    return me


@pytest.fixture
def create_subject(client, user):
    def create(photos=None, name="Rex", class_noun="circle", http_client=None):
        data = {key: value for key, value in (("name", name), ("class_noun", class_noun)) if value is not None}
        return (http_client or client).post("/api/v1/subjects", data=data, files=files(photos or good_photos(3)))

    return create


@pytest.fixture
def nothing_stored(db):
    """Asserts that no subject, photo, job, model, ledger entry or upload file exists."""

    def check() -> None:
        counts = row_counts(db)
        assert counts == dict.fromkeys(counts, 0), counts
        assert stored_uploads() == []

    return check


@pytest.fixture(scope="session")
def tiny_base_folder(tmp_path_factory):
    """A tiny random Stable-Diffusion-format model (workers.engine.tiny_model)."""
    from workers.engine.tiny_model import write_tiny_pipeline

    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(autouse=True)
def _credits_out_of_the_way(generous_credits):
    """Every test here runs with the generous_credits settings (tests/conftest.py)."""
