"""The web process never loads the ML stack (ARCHITECTURE rule 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

HEAVY_MODULES = ["torch", "diffusers", "transformers", "lightning", "workers.engine", "workers.dreambooth"]


def test_importing_the_web_app_does_not_load_torch() -> None:
    script = (
        "import json, sys\n"
        "from app.main import create_app\n"
        "create_app()\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_cli_does_not_load_torch_for_web_commands() -> None:
    script = "import sys\nimport app.cli\napp.cli.build_parser()\nprint('torch' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
