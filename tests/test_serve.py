"""`imagebooth serve`: web and worker together, a printed URL, a clean Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serve_process import free_port, wait_for_url

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60


@pytest.fixture
def served(clean_state, stop_process):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield process, wait_for_url(process, START_TIMEOUT_S)
    finally:
        stop_process(process, signal.SIGINT)  # when the test failed before its own Ctrl-C


@pytest.mark.slow
def test_serve_runs_web_and_worker_and_stops_both_on_ctrl_c(served) -> None:
    process, url = served
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/readyz").status_code == 200
        signup = http.post("/api/v1/auth/signup", json={"email": "curl@example.com", "password": "long enough"})
        assert signup.status_code == 201
        assert http.get("/api/v1/me").json()["email"] == "curl@example.com"
    from workers.system import ping

    reply = ping.delay("served").get(timeout=START_TIMEOUT_S, interval=0.02)
    assert reply["pong"] == "served" and reply["pid"] != process.pid  # answered by the worker beside it

    process.send_signal(signal.SIGINT)
    stderr = process.stderr.read()  # until serve (and the worker) close it
    process.wait(timeout=40)
    assert process.returncode == 0, stderr
    assert "worker stopped (exit 0)" in stderr
    assert "Traceback" not in stderr


def test_a_busy_port_is_named_with_the_way_to_pick_another(clean_state) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=REPO_ROOT,
                                  capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert finished.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in finished.stderr
    assert f"make run PORT={port + 1}" in finished.stderr
    assert "worker" not in finished.stdout.lower()  # nothing was started


def test_a_model_too_big_for_two_copies_gets_one_worker_for_both_queues(tiny_sdxl) -> None:
    from safetensors.torch import load_file

    from app.catalog.checkpoint import parameter_count
    from app.serve import embedded_workers, serving_bytes

    weights = [load_file(file) for file in tiny_sdxl.glob("*/*.safetensors")]
    assert {file.parent.name for file in tiny_sdxl.glob("*/*.safetensors")} >= {"unet", "text_encoder_2", "vae"}
    assert parameter_count(tiny_sdxl) == sum(t.numel() for state in weights for t in state.values())
    assert serving_bytes(tiny_sdxl) == 4 * parameter_count(tiny_sdxl)
    assert serving_bytes(tiny_sdxl / "missing") == 0
    gb = 10**9
    assert [p.queue for p in embedded_workers(2, 4 * gb, 24 * gb)] == ["inference", "training"]  # SD 1.5
    [both] = embedded_workers(2, 14 * gb, 24 * gb)  # SDXL in fp32
    assert both.queue == "inference,training" and both.threads == 2 and both.nice == 0
    assert len(embedded_workers(2, 14 * gb, None)) == 2  # memory unknown: the usual plan
