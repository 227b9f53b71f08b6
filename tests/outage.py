"""Requests made by a separate web process whose broker or Redis really is unreachable (a port
nobody listens on): the settings of this test process are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.serve_process import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = """
import json, os, signal, sys
from fastapi.testclient import TestClient
from app.jobs import outbox
from app.main import create_app
path, key, body, die = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "die"
if die:  # the process dies between the commit and the send
    outbox.enqueue = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
with TestClient(create_app(), raise_server_exceptions=False) as client:
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
print(json.dumps({"status": response.status_code, "body": response.json(), "headers": dict(response.headers)}))
"""


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict
    headers: dict[str, str]


def unreachable_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def _run(settings: dict[str, str], api_key: str, path: str, body: dict, die: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, **{f"IMAGEBOOTH_{name.upper()}": value for name, value in settings.items()}}
    command = [sys.executable, "-c", _SCRIPT, path, api_key, json.dumps(body), "die" if die else "live"]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def post_with(settings: dict[str, str], api_key: str, path: str, body: dict) -> Reply:
    """POST `body` to `path` from a fresh web process with these IMAGEBOOTH_ settings."""
    result = _run(settings, api_key, path, body, die=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return Reply(**json.loads(result.stdout.strip().splitlines()[-1]))


def post_and_die_before_sending(api_key: str, path: str, body: dict) -> None:
    """POST from a web process that is SIGKILLed right after its commit, before the send."""
    result = _run({}, api_key, path, body, die=True)
    assert result.returncode == -9, (result.returncode, result.stderr[-3000:])
