"""Fixtures for generation tests: a signed-up caller, jobs, and a real inference worker
running the tiny random model (written once per module, about a second)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEST_DATA_DIR, imagebooth_command, stop_process

WORKER_START_TIMEOUT_S = 90  # torch import and warm-up on a busy 2-core machine
JOB_TIMEOUT_S = 60


@dataclass
class WorkerHandle:
    """A real `imagebooth worker` on the inference queue; restartable after a kill."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    starts: int = field(default=0)

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                imagebooth_command("worker", "--queues", "inference", "--loglevel", "INFO"),
                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # never left behind to answer the next session's pings on the same broker
            raise

    def wait_ready(self) -> None:
        # The warm-up runs before the worker consumes, so a ping answered means warm.
        from workers.system import ping

        declare_queues()
        reply = ping.apply_async(("ready",), queue="inference").get(timeout=WORKER_START_TIMEOUT_S, interval=0.02)
        assert reply["pid"] == self.process.pid, self.log()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def declare_queues() -> None:
    """(Re)declare the queues and their bindings: the per-test Redis flush removes the
    bindings a running worker declared at start, and a message sent to an exchange without
    bindings is dropped."""
    from workers.celery_app import app as celery

    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in celery.conf.task_queues:
            queue.bind(channel).declare()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from workers.engine.tiny_model import write_tiny_pipeline

    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "tiny-sd")


@pytest.fixture(scope="module")
def model_env(tiny_model: Path):
    """IMAGEBOOTH_MODEL_PATH -> the tiny model, for this process and the worker."""
    from app.config import get_settings

    previous = os.environ.get("IMAGEBOOTH_MODEL_PATH")
    os.environ["IMAGEBOOTH_MODEL_PATH"] = str(tiny_model)
    get_settings.cache_clear()
    yield tiny_model
    if previous is None:
        os.environ.pop("IMAGEBOOTH_MODEL_PATH", None)
    else:
        os.environ["IMAGEBOOTH_MODEL_PATH"] = previous
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def module_worker(db_schema, model_env):
    # Beats twice a second, stale after six missed beats, repairs every half second: a killed
    # worker's job is found within seconds. Webhook deliveries are retried within a second.
    settings = {"JOB_HEARTBEAT_S": "0.5", "JOB_STALE_AFTER_S": "3", "JOB_RECONCILE_EVERY_S": "0.5",
                "WEBHOOK_RETRY_FIRST_S": "0.2", "WEBHOOK_POLL_S": "0.1"}
    env = {**os.environ, "OMP_NUM_THREADS": "1", **{f"IMAGEBOOTH_{k}": v for k, v in settings.items()}}
    handle = WorkerHandle(env=env, log_path=TEST_DATA_DIR / "generation-worker.log")
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def worker(clean_state, module_worker: WorkerHandle) -> WorkerHandle:
    """The module's worker, usable after this test's state reset (restarted if a test
    killed it)."""
    if module_worker.process is None or module_worker.process.poll() is not None:
        module_worker.start()
    else:
        declare_queues()
    return module_worker


@pytest.fixture
def caller(client, accounts):
    """A signed-up user whose requests carry an API key (no CSRF needed)."""
    accounts.signup(client)
    key = accounts.api_key(client)["key"]
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def wait_final(client, job_id: str, timeout: float = JOB_TIMEOUT_S) -> tuple[dict, list[dict]]:
    """Long-poll until the job is final; returns (last body, every body seen)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/generations/{job_id}", params={"wait": 5})
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in ("succeeded", "failed", "canceled"):
            return seen[-1], seen
    raise AssertionError(f"job {job_id} not final after {timeout}s: {seen[-1:]}")


def wait_status(client, job_id: str, status: str, timeout: float = JOB_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/generations/{job_id}", params={"wait": 2}).json()
        if body["status"] == status:
            return body
        assert body["status"] in ("queued", "running"), body
    raise AssertionError(f"job {job_id} never {status}")


@pytest.fixture(autouse=True)
def _credits_out_of_the_way(generous_credits):
    """Every test here runs with the generous_credits settings (tests/conftest.py)."""
