"""Test configuration: real engines, two backends.

IMAGEBOOTH_TEST_BACKEND selects them:
- `embedded` (default): a SQLite file in a temporary folder, the filesystem broker, no Redis.
- `real`: Postgres (IMAGEBOOTH_TEST_DATABASE_URL, default the local `test` database) and
  Redis database 15 (IMAGEBOOTH_TEST_REDIS_URL).

The schema is built once per session by the Alembic migrations (so they are tested too);
every test that asks for the database starts from empty tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKEND = os.environ.get("IMAGEBOOTH_TEST_BACKEND", "embedded")
if BACKEND not in ("embedded", "real"):
    raise pytest.UsageError(f"IMAGEBOOTH_TEST_BACKEND must be 'embedded' or 'real', not {BACKEND!r}")
REAL_DATABASE_URL = os.environ.get(
    "IMAGEBOOTH_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REAL_REDIS_URL = os.environ.get("IMAGEBOOTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Pure ML code never touches the database, broker or Redis: running it a second time in
# `real` mode would only double the slowest part of the suite.
BACKEND_INDEPENDENT_DIRS = ("tests/workers/engine", "tests/workers/shapes", "tests/workers/dreambooth")


def _configure_environment() -> Path:
    """Point every setting at test resources before anything reads the settings."""
    for name in [key for key in os.environ if key.startswith("IMAGEBOOTH_") and not key.startswith("IMAGEBOOTH_TEST_")]:
        del os.environ[name]
    data_dir = Path(tempfile.mkdtemp(prefix=f"imagebooth-test-{BACKEND}-"))
    os.environ.update({"IMAGEBOOTH_ENV": "test", "IMAGEBOOTH_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"})
    if BACKEND == "real":
        os.environ["IMAGEBOOTH_DATABASE_URL"] = REAL_DATABASE_URL
        os.environ["IMAGEBOOTH_REDIS_URL"] = REAL_REDIS_URL
    return data_dir


TEST_DATA_DIR = _configure_environment()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts processes (worker, server); deselect with -m 'not slow'")
    config.addinivalue_line("markers", "backend_independent: runs only in the embedded pass")


def pytest_report_header(config: pytest.Config) -> str:
    return f"imagebooth test backend: {BACKEND} (data dir {TEST_DATA_DIR})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "real":
        return
    root = Path(str(config.rootpath))
    keep, drop = [], []
    for item in items:
        relative = Path(str(item.path)).relative_to(root).as_posix() if Path(str(item.path)).is_relative_to(root) else ""
        independent = item.get_closest_marker("backend_independent") or relative.startswith(BACKEND_INDEPENDENT_DIRS)
        (drop if independent else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def backend() -> str:
    return BACKEND


# --- database -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def db_schema() -> Iterator[None]:
    """Build the schema with the real migrations, once."""
    from app import migrate
    from app.config import get_settings
    from app.db import dispose_engines, get_engine

    get_settings.cache_clear()
    dispose_engines()
    if BACKEND == "real":
        from sqlalchemy import text

        with get_engine().begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade()
    yield
    dispose_engines()


def _empty_all_tables() -> None:
    from app.db import get_engine
    from app.models import Base

    # DELETE, children first: on tables this small it beats TRUNCATE by a wide margin.
    with get_engine().begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def _empty_broker_and_redis() -> None:
    from app.config import get_settings
    from app.redis_client import get_redis

    client = get_redis()
    if client is not None:
        client.flushdb()  # also the Redis broker's queues
    queue_dir = get_settings().broker_transport_options.get("data_folder_in")
    if queue_dir and Path(queue_dir).is_dir():
        for message in Path(queue_dir).iterdir():
            message.unlink(missing_ok=True)


@pytest.fixture
def clean_state(db_schema: None) -> Iterator[None]:
    """Empty tables, queues (and Redis in `real` mode) before the test."""
    from app.config import get_settings

    get_settings.cache_clear()
    _empty_all_tables()
    _empty_broker_and_redis()
    yield


@pytest.fixture
def db(clean_state: None):
    """A session for arranging and checking data; the test commits what it arranges."""
    from app.db import new_session

    session = new_session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def client(clean_state: None):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def make_client(clean_state: None):
    """More browsers (each with its own cookie jar) for tests with several users."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app()
    clients: list[TestClient] = []

    def factory() -> TestClient:
        clients.append(TestClient(app, raise_server_exceptions=False))
        return clients[-1]

    yield factory
    for test_client in clients:
        test_client.close()


@pytest.fixture
def env_override(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Change settings for one test: env_override(DATABASE_URL=...) sets IMAGEBOOTH_*."""
    from app.config import get_settings

    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"IMAGEBOOTH_{name.upper()}", value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


# --- accounts -------------------------------------------------------------------------
PASSWORD = "correct horse battery"


class Accounts:
    """Sign up and authenticate test users through the public API."""

    def __init__(self) -> None:
        self._count = 0

    def new_email(self) -> str:
        self._count += 1
        return f"user{self._count}@example.com"

    def signup(self, client, email: str | None = None, password: str = PASSWORD) -> dict:
        response = client.post("/api/v1/auth/signup", json={"email": email or self.new_email(), "password": password})
        assert response.status_code == 201, response.text
        return response.json()

    @staticmethod
    def csrf(client) -> dict[str, str]:
        return {"X-CSRF-Token": client.cookies["imagebooth_csrf"]}

    def api_key(self, client, name: str = "test key") -> dict:
        response = client.post("/api/v1/api-keys", json={"name": name}, headers=self.csrf(client))
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def accounts() -> Accounts:
    return Accounts()


# --- processes ------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parent.parent


def imagebooth_command(*args: str) -> list[str]:
    # Through the interpreter running the tests, so no installed console script is needed.
    import sys

    return [sys.executable, "-m", "app.cli", *args]


@pytest.fixture
def run_cli(clean_state: None):
    """Run `imagebooth ARGS...` in a subprocess with the test settings."""
    import subprocess

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            imagebooth_command(*args), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
        )

    return run


def stop_process(process, signal_number: int, timeout: float = 30) -> None:
    """Ask a process to stop gracefully; kill it if it does not within `timeout`."""
    import subprocess

    if process.poll() is not None:
        return
    process.send_signal(signal_number)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(name="stop_process")
def stop_process_fixture():
    return stop_process


@pytest.fixture
def worker_process(clean_state: None):
    """A real Celery worker (`imagebooth worker`) consuming both queues."""
    import signal
    import subprocess

    log_path = TEST_DATA_DIR / "worker.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            imagebooth_command("worker", "--queues", "inference,training", "--loglevel", "INFO"),
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    yield process
    stop_process(process, signal.SIGTERM)


@pytest.fixture
def worker_log() -> Path:
    return TEST_DATA_DIR / "worker.log"


@pytest.fixture
def generous_credits(monkeypatch):
    """Credits and tier limits have their own tests (tests/credits); here they stay out of
    the way: a large daily allowance and no practical limit on jobs at once."""
    from app.config import get_settings

    monkeypatch.setenv("IMAGEBOOTH_FREE_DAILY_CREDITS", "100000")
    monkeypatch.setenv("IMAGEBOOTH_FREE_MAX_ACTIVE_JOBS", "1000")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def random_model_builds(tmp_path_factory) -> Path:
    """One cache of workers/random_models.py builds for the whole run (each tiny build is made once)."""
    return tmp_path_factory.mktemp("random-models")


@pytest.fixture(scope="session")
def tiny_sdxl(random_model_builds) -> Path:
    from workers import random_models

    return random_models.cached_model("tiny-sdxl", random_model_builds)
