"""Settings: the one place that reads the environment.

With no settings at all the service runs embedded (SQLite, a filesystem broker, the bundled
model, files under ./var). Production points the URLs at Postgres and Redis and must supply
its secrets: a missing one is a start-up error, never a silent default.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Resolved from this file, not the working directory, so `imagebooth serve` finds the
# bundled model wherever it is started from.
REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL_PATH = REPO_ROOT / "models" / "shapes-v1"

# Only ever used outside production; long enough to satisfy the production length check
# so that tests exercising production code paths can reuse it deliberately.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"
MIN_PRODUCTION_SECRET_LENGTH = 32
FILESYSTEM_BROKER_URL = "filesystem://"
MEBIBYTE = 1024 * 1024
MIN_BEATS_BEFORE_STALE = 3


class CreditPack(BaseModel):
    """A pack of paid credits on sale (IMAGEBOOTH_CREDIT_PACKS, a JSON list)."""

    id: str = Field(min_length=1, max_length=64)
    name: str
    credits: int = Field(gt=0)
    price_cents: int = Field(gt=0)
    currency: str = "usd"


DEFAULT_CREDIT_PACKS = [
    CreditPack(id="starter", name="100 credits", credits=100, price_cents=500),
    CreditPack(id="studio", name="500 credits", credits=500, price_cents=2000),
]


class Plan(BaseModel):
    """A subscription plan on sale (IMAGEBOOTH_PLANS, a JSON list)."""

    id: str = Field(min_length=1, max_length=64)
    name: str
    price_cents: int = Field(gt=0)
    currency: str = "usd"
    interval: Literal["day", "week", "month", "year"] = "month"
    credits: int = Field(ge=0, le=10_000_000)  # paid credits each paid invoice grants
    max_active_jobs: int = Field(ge=1)  # jobs queued or running at once
    priority: int = Field(2, ge=1)  # queue priority: free work is 0, paid credits alone 1
    # A Price made in Stripe's dashboard: needed for plan changes in the customer portal,
    # which switches between Prices. Without it Checkout prices the plan inline.
    stripe_price_id: str | None = None


DEFAULT_PLANS = [
    Plan(id="pro", name="Pro", price_cents=1200, credits=1000, max_active_jobs=8, priority=2),
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IMAGEBOOTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("var")
    # "" (unset) is filled in by _derive_defaults, so code after validation sees a URL.
    database_url: str = ""
    redis_url: str | None = None
    broker_url: str = ""
    model_path: Path = BUNDLED_MODEL_PATH
    # A single-file checkpoint's configs (a diffusers folder of its family; weights not needed):
    # unset, the file's own folder when it holds a model_index.json. Never fetched from a hub.
    model_config_path: Path | None = None
    secret_key: SecretStr | None = None

    free_daily_credits: int = Field(25, ge=0)
    image_credit_cost: int = Field(1, ge=0)
    finetune_credit_cost: int = Field(20, ge=0)
    # The fine-tune price covers this many training steps; a job asking for more pays in proportion.
    finetune_credit_steps: int = Field(800, ge=1)
    # A YAML file laid over the base model's DreamBooth preset for every fine-tune (tests
    # point it at a tiny config; operators can tune steps, class images and the like).
    finetune_config: Path | None = None
    # LoRA personal models are adapters on the worker's one warm base (workers/engine/adapters.py):
    # as many stay loaded as fit in this many MB of adapter weights, least recently used out first.
    adapter_cache_mb: float = Field(512.0, gt=0)
    # The fast profile's backend: "auto" compiles an OpenVINO candidate at load and keeps the faster
    # of it and PyTorch (a warm-up A/B); "torch" skips the export (at SD 1.5 size on a CPU it took
    # 31 minutes and 13 GB the first time, measured); "openvino" skips the A/B.
    engine_backend: Literal["auto", "torch", "openvino"] = "auto"
    # Jobs (app/jobs): a worker beats each running job's heartbeat every job_heartbeat_s; a
    # job silent for job_stale_after_s has lost its worker and is queued again (a fine-tune
    # resumes from its checkpoint). A queued job not taken job_resend_after_s after its task
    # was sent is sent again (the message was lost), then at doubling intervals. The worker's
    # reconciler looks every job_reconcile_every_s.
    job_heartbeat_s: float = Field(2.0, gt=0)
    job_stale_after_s: float = Field(30.0, gt=0)
    job_resend_after_s: float = Field(30.0, gt=0)
    job_reconcile_every_s: float = Field(5.0, gt=0)
    # Cross-request batching (workers/generation.py): the inference worker runs up to
    # max_batch_images pictures of compatible jobs in one UNet batch (1: every job alone), and
    # waits up to batch_wait_ms for company when fewer are queued.
    max_batch_images: int = Field(8, ge=1, le=64)
    batch_wait_ms: float = Field(10.0, ge=0, le=1000)
    # Jobs queued or running at once: free users, and premium users (with paid credits).
    free_max_active_jobs: int = Field(1, ge=1)
    premium_max_active_jobs: int = Field(4, ge=1)
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    # Where the Stripe client sends API calls; tests point it at a local stand-in.
    stripe_api_base: str | None = None
    stripe_webhook_tolerance_s: int = Field(300, gt=0)
    credit_packs: list[CreditPack] = Field(default_factory=lambda: list(DEFAULT_CREDIT_PACKS))
    plans: list[Plan] = Field(default_factory=lambda: list(DEFAULT_PLANS))
    # A plan whose renewal payment failed keeps its benefits this long (Stripe retries meanwhile).
    plan_grace_days: float = Field(3.0, ge=0)
    # A refunded or disputed pack takes back its credits; the paid balance may go this far
    # below zero for it (0: only what is unspent is taken back).
    refund_max_debt: int = Field(0, ge=0)
    # The address users reach the site at: Stripe Checkout sends them back there.
    public_url: str = "http://127.0.0.1:8000"

    # Rate limits (the `limits` notation, e.g. "30/minute;500/day"); Redis-backed when
    # REDIS_URL is set, in memory otherwise.
    rate_limits_enabled: bool = True
    rate_limit_jobs_per_user: str = "30/minute"
    rate_limit_jobs_per_ip: str = "120/minute"
    rate_limit_auth_per_account: str = "20/minute"
    rate_limit_auth_per_ip: str = "60/minute"

    # Uploads of subject photos (POST /api/v1/subjects): decoding a photo costs CPU and
    # hundreds of MB, so they have their own limits and a bound on decodes at once.
    rate_limit_uploads_per_user: str = "10/hour"
    rate_limit_uploads_per_ip: str = "30/hour"
    max_concurrent_photo_decodes: int = Field(2, ge=1)

    # The database pool of one web process. `db_pool_size` is also how many requests use
    # the database at once; up to `db_max_waiting` more wait their turn (on the event loop,
    # at most `db_pool_timeout_s`); beyond that, or after that, 503 with Retry-After. The
    # overflow is headroom for the rare second connection (a credit counter rebuild).
    # Statements running longer than `db_statement_timeout_s` are canceled (503).
    db_pool_size: int = Field(10, ge=1)
    db_max_waiting: int = Field(50, ge=0)
    db_max_overflow: int = Field(5, ge=0)
    db_pool_timeout_s: float = Field(5.0, gt=0)
    db_statement_timeout_s: float = Field(15.0, gt=0)

    # Addresses (or networks) of the reverse proxies whose X-Forwarded-For/-Proto headers
    # are believed; a JSON list or comma-separated. None by default: the peer address is
    # the client, whatever headers it sends.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Outbound webhooks (app/webhooks): a delivery is retried for webhook_retry_for_s, first
    # after webhook_retry_first_s and three times longer after each failure (at most 4 h).
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_retry_first_s: float = Field(10.0, gt=0)
    webhook_retry_for_s: float = Field(24 * 3600.0, gt=0)
    webhook_poll_s: float = Field(1.0, gt=0)
    max_webhooks_per_user: int = Field(10, ge=1)

    max_upload_bytes: int = Field(15 * MEBIBYTE, gt=0)
    max_json_bytes: int = Field(1 * MEBIBYTE, gt=0)
    # A subject upload carries up to five photos plus form fields.
    max_multipart_bytes: int = Field(80 * MEBIBYTE, gt=0)
    session_max_age_s: int = Field(14 * 24 * 3600, gt=0)
    log_level: str = "INFO"

    @field_validator(
        "database_url", "redis_url", "broker_url", "secret_key", "stripe_secret_key", "stripe_webhook_secret",
        "stripe_api_base", mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        # `IMAGEBOOTH_REDIS_URL=` in a compose file means "not configured".
        if isinstance(value, str) and not value.strip():
            return "" if info.field_name in ("database_url", "broker_url") else None
        return value

    @field_validator("plans")
    @classmethod
    def _unique_plan_ids(cls, plans: list[Plan]) -> list[Plan]:
        ids = [plan.id for plan in plans]
        if len(set(ids)) != len(ids):
            raise ValueError(f"plan ids must be unique: {ids}")
        return plans

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8)") from None
        return value

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.model_path = self.model_path.expanduser().resolve()
        if self.finetune_config is not None:
            self.finetune_config = self.finetune_config.expanduser().resolve()
        if self.model_config_path is not None:
            self.model_config_path = self.model_config_path.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'imagebooth.db'}"
        self.database_url = _with_psycopg_driver(self.database_url)
        if not self.broker_url:
            self.broker_url = self.redis_url or FILESYSTEM_BROKER_URL
        return self

    @model_validator(mode="after")
    def _stale_means_several_missed_beats(self) -> Settings:
        # One late beat (a busy machine) must not make a healthy job look dead.
        if self.job_stale_after_s < MIN_BEATS_BEFORE_STALE * self.job_heartbeat_s:
            raise ValueError(
                f"IMAGEBOOTH_JOB_STALE_AFTER_S must be at least {MIN_BEATS_BEFORE_STALE} times "
                "IMAGEBOOTH_JOB_HEARTBEAT_S"
            )
        return self

    @model_validator(mode="after")
    def _require_production_secrets(self) -> Settings:
        if self.env != "production":
            if self.secret_key is None:
                self.secret_key = SecretStr(DEVELOPMENT_SECRET_KEY)
            return self
        problems = []
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(secret) < MIN_PRODUCTION_SECRET_LENGTH or secret == DEVELOPMENT_SECRET_KEY:
            problems.append(
                f"IMAGEBOOTH_SECRET_KEY must be set to a random string of at least "
                f"{MIN_PRODUCTION_SECRET_LENGTH} characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            problems.append(
                "IMAGEBOOTH_STRIPE_WEBHOOK_SECRET must be set when IMAGEBOOTH_STRIPE_SECRET_KEY is"
            )
        if problems:
            raise ValueError("production settings incomplete: " + "; ".join(problems))
        return self

    # --- derived values -------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem:")

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def broker_transport_options(self) -> dict[str, Any]:
        if not self.uses_filesystem_broker:
            return {}
        # One folder in and out: producers and consumers share a single mailbox.
        queue_dir = str(self.broker_dir / "queue")
        return {
            "data_folder_in": queue_dir,
            "data_folder_out": queue_dir,
            "control_folder": str(self.broker_dir / "control"),
            "processed_folder": str(self.broker_dir / "processed"),
            "store_processed": False,
            "polling_interval": 0.02,
        }

    def secret(self) -> str:
        assert self.secret_key is not None  # filled by the validator
        return self.secret_key.get_secret_value()


def _with_psycopg_driver(url: str) -> str:
    # Plain postgres URLs (as Heroku-style platforms hand out) would pick psycopg2,
    # which is not installed; we ship psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
