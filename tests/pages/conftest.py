"""Browser-test fixtures: a real `imagebooth serve` (web + worker) on the tiny random model,
and Debian's Chromium driven by Playwright (sync API).

The server gets its own data folder and SQLite database, so it lives for the whole module
beside the other tests' per-test table wipes. Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, stop_process
from tests.serve_process import free_port, wait_for_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
SERVER_START_TIMEOUT_S = 90
# A fine-tune of a few seconds on the tiny model: long enough that a generation submitted
# meanwhile really waits in line behind it (6 steps sometimes finished first on an idle machine).
TINY_FINETUNE = "steps: 60\nnum_class_images: 2\nclass_image_steps: 2\ncheckpoint_every: 30\n"
FREE_DAILY_CREDITS = 6
FINETUNE_CREDIT_COST = 3
JOBS_PER_USER = 3  # per minute: low, so a test can reach the rate limit (each test is its own user)


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@contextmanager
def running_server(root: Path, model: Path | None = None, **settings: str) -> Iterator[Server]:
    """`imagebooth serve` (web + worker) with its own data folder, on `model` (default: the
    tiny random model, written here); `settings`: more IMAGEBOOTH_* values (without the prefix)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) for the browser tests")
    from workers.engine.tiny_model import write_tiny_pipeline

    finetune_config = root / "finetune.yaml"
    finetune_config.write_text(TINY_FINETUNE)
    model = model or write_tiny_pipeline(root / "tiny-model")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("IMAGEBOOTH_")}
    env.update({
        "IMAGEBOOTH_ENV": "test", "IMAGEBOOTH_DATA_DIR": str(root / "data"), "HF_HUB_OFFLINE": "1",
        "IMAGEBOOTH_MODEL_PATH": str(model),
        "IMAGEBOOTH_FINETUNE_CONFIG": str(finetune_config),
        "IMAGEBOOTH_FREE_DAILY_CREDITS": str(FREE_DAILY_CREDITS),
        "IMAGEBOOTH_FINETUNE_CREDIT_COST": str(FINETUNE_CREDIT_COST),
        "IMAGEBOOTH_RATE_LIMIT_JOBS_PER_USER": f"{JOBS_PER_USER}/minute",
        "IMAGEBOOTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **{f"IMAGEBOOTH_{name.upper()}": value for name, value in settings.items()},
    })
    log_path = root / "server.log"
    with open(log_path, "w") as stderr_log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr_log, text=True,
        )
    try:
        url = wait_for_url(process, SERVER_START_TIMEOUT_S)
        yield Server(url, process, log_path)
    finally:
        stop_process(process, signal.SIGINT)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: Server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server: Server):
    """A fresh browser profile (no cookies) at desktop size; fails the test on a page error."""
    context = browser.new_context(base_url=server.url, accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(tab, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        tab.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def api_user(server: Server, paid_credits: int = 0):
    """An httpx client for a new user with an API key; `paid_credits` granted through
    `imagebooth credits grant` on the server's database (paid credits make it premium)."""
    import httpx

    email = f"api-{time.monotonic_ns()}@example.com"
    signup = httpx.Client(base_url=server.url, timeout=30)
    assert signup.post("/api/v1/auth/signup", json={"email": email, "password": "a long password"}).status_code == 201
    key = signup.post("/api/v1/api-keys", json={"name": "test"},
                      headers={"X-CSRF-Token": signup.cookies["imagebooth_csrf"]}).json()["key"]
    signup.close()
    if paid_credits:
        env = {key: value for key, value in os.environ.items() if not key.startswith("IMAGEBOOTH_")}
        env.update({"IMAGEBOOTH_ENV": "test", "IMAGEBOOTH_DATA_DIR": str(server.log_path.parent / "data")})
        subprocess.run([sys.executable, "-m", "app.cli", "credits", "grant", email, str(paid_credits)], cwd=REPO_ROOT,
                       env=env, check=True, timeout=60, capture_output=True)
    return httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def sign_up(server: Server):
    """Sign a browser up through the signup page; returns the email."""
    counter = iter(range(1, 1000))

    def run(tab, prefix: str = "browser") -> str:
        email = f"{prefix}{next(counter)}-{time.monotonic_ns()}@example.com"
        tab.goto("/signup")
        tab.get_by_label("Email").fill(email)
        tab.get_by_label("Password").fill("a long password")
        tab.get_by_role("button", name="Sign up").click()
        tab.wait_for_url(f"{server.url}/")
        return email

    return run
