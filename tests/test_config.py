"""Settings: embedded defaults with nothing set, strict production, derived URLs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import BUNDLED_MODEL_PATH, REPO_ROOT, Settings


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("IMAGEBOOTH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_settings_at_all_is_the_embedded_default(bare_env: Path) -> None:
    settings = Settings(_env_file=None)
    assert settings.env == "development"
    assert settings.data_dir == bare_env / "var"
    assert settings.database_url == f"sqlite:///{bare_env / 'var' / 'imagebooth.db'}"
    assert settings.redis_url is None
    assert settings.broker_url == "filesystem://"
    assert settings.broker_transport_options["polling_interval"] == 0.02
    assert settings.broker_transport_options["data_folder_in"].startswith(str(bare_env / "var" / "broker"))
    assert settings.secret()  # a development key exists, so the app runs
    assert (settings.free_daily_credits, settings.image_credit_cost, settings.finetune_credit_cost) == (25, 1, 20)
    assert settings.max_upload_bytes == 15 * 1024 * 1024


def test_model_path_defaults_to_bundled_model_wherever_started(bare_env: Path) -> None:
    assert Settings(_env_file=None).model_path == BUNDLED_MODEL_PATH == REPO_ROOT / "models" / "shapes-v1"


def test_redis_url_becomes_the_broker(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_REDIS_URL", "redis://cache:6379/0")
    settings = Settings(_env_file=None)
    assert settings.broker_url == "redis://cache:6379/0"
    assert settings.broker_transport_options == {}


def test_blank_urls_mean_unset(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_REDIS_URL", "")
    assert Settings(_env_file=None).redis_url is None


def test_plain_postgres_url_uses_psycopg3(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_DATABASE_URL", "postgres://u:p@db:5432/app")
    assert Settings(_env_file=None).database_url == "postgresql+psycopg://u:p@db:5432/app"


def test_production_without_secret_key_is_a_clear_error(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_ENV", "production")
    with pytest.raises(ValidationError, match="IMAGEBOOTH_SECRET_KEY must be set"):
        Settings(_env_file=None)


def test_production_rejects_a_short_secret(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_ENV", "production")
    monkeypatch.setenv("IMAGEBOOTH_SECRET_KEY", "short")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=None)


def test_production_stripe_key_needs_webhook_secret(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_ENV", "production")
    monkeypatch.setenv("IMAGEBOOTH_SECRET_KEY", "x" * 48)
    monkeypatch.setenv("IMAGEBOOTH_STRIPE_SECRET_KEY", "sk_test_123")
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET"):
        Settings(_env_file=None)


def test_production_with_secrets_is_accepted(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_ENV", "production")
    monkeypatch.setenv("IMAGEBOOTH_SECRET_KEY", "x" * 48)
    settings = Settings(_env_file=None)
    assert settings.is_production and settings.secret() == "x" * 48


def test_cli_reports_configuration_error_without_traceback(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_ENV", "production")
    result = run_cli("migrate")
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "IMAGEBOOTH_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_blank_secrets_count_as_missing(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_SECRET_KEY", "")
    monkeypatch.setenv("IMAGEBOOTH_STRIPE_SECRET_KEY", "")
    settings = Settings(_env_file=None)
    assert settings.secret() and settings.stripe_secret_key is None
    monkeypatch.setenv("IMAGEBOOTH_ENV", "production")
    with pytest.raises(ValidationError, match="IMAGEBOOTH_SECRET_KEY must be set"):
        Settings(_env_file=None)


def test_a_job_is_stale_only_after_several_missed_heartbeats(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEBOOTH_JOB_HEARTBEAT_S", "2")
    monkeypatch.setenv("IMAGEBOOTH_JOB_STALE_AFTER_S", "2")  # one late beat would look like a dead worker
    with pytest.raises(ValidationError, match="at least 3 times IMAGEBOOTH_JOB_HEARTBEAT_S"):
        Settings()
    monkeypatch.setenv("IMAGEBOOTH_JOB_STALE_AFTER_S", "6")
    assert Settings().job_stale_after_s == 6
