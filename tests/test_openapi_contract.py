"""The OpenAPI document is the truth: schemathesis against a served app finds no 5xx, no status
code the document does not declare, and no body that does not match its schema.

A real `uvicorn` serving the app (no worker: jobs stay queued, which every route handles), on
the suite's database, with Stripe pointed at the billing tests' stand-in so the billing routes
answer as they do in production. Bounded (examples per operation) and seeded, so a run takes
well under a minute and repeats exactly: tests/schemathesis.toml holds the settings (and says
which check is left out, and why).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.billing.conftest import PLANS, WEBHOOK_SECRET, StripeStandIn
from tests.conftest import REPO_ROOT, TEST_DATA_DIR
from tests.serve_process import free_port

CONFIG = REPO_ROOT / "tests" / "schemathesis.toml"  # checks, examples per operation, seed
START_TIMEOUT_S = 30
RUN_TIMEOUT_S = 240


@pytest.fixture
def served_api(clean_state, env_override, stop_process):
    stripe = StripeStandIn()
    env_override(STRIPE_SECRET_KEY="sk_test_123", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe.url,
                 PLANS=PLANS, RATE_LIMITS_ENABLED="false", FREE_DAILY_CREDITS="100000", FREE_MAX_ACTIVE_JOBS="100000")
    port = free_port()
    log = open(TEST_DATA_DIR / "schemathesis-server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port), "--log-level", "warning"],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        stop_process(process, signal.SIGTERM)
        log.close()
        stripe.close()


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the app did not start; see schemathesis-server.log")


def _api_key(url: str) -> str:
    with httpx.Client(base_url=url, timeout=10) as browser:
        browser.post("/api/v1/auth/signup", json={"email": "schema@example.com", "password": "a long password"})
        created = browser.post("/api/v1/api-keys", json={"name": "schemathesis"},
                               headers={"X-CSRF-Token": browser.cookies["imagebooth_csrf"]})
        return created.json()["key"]


@pytest.mark.slow
def test_the_api_answers_only_what_its_document_declares(served_api, tmp_path) -> None:
    # the CLI installed beside the interpreter running the tests (a dev dependency)
    schemathesis = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [str(schemathesis), "--config-file", str(CONFIG), "--no-color", "run", f"{served_api}/api/openapi.json",
         "--header", f"Authorization: Bearer {_api_key(served_api)}", "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    assert "generated" in run.stdout and "failures" not in run.stdout.splitlines()[-1], run.stdout[-3000:]
