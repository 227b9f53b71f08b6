"""bench/gpu_check.sh's parts that need no GPU: its arguments, the plan and the model builds."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_check import CHECKS, plan

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_the_plan_covers_both_sizes_of_each_family_and_refuses_unknown_names():
    checks = plan(["sd15", "sdxl"])
    assert {(c.model, c.pixels) for c in checks} == {("sd15", 512), ("sd15", 1024), ("sdxl", 1024), ("sdxl", 512)}
    assert {c.name for c in checks} == set(CHECKS)
    with pytest.raises(ValueError, match="unknown model"):
        plan(["sd3"])
    with pytest.raises(ValueError, match="unknown check"):
        plan(["sd15"], ["fp4"])


def test_dry_run_builds_the_models_and_prints_the_plan(tmp_path):
    done = _run("--dry-run", "--cache", str(tmp_path), "--models", "tiny-sd,tiny-sdxl", "--checks", "fp16-sdpa,fp8-weight-only")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["model"], r["check"]) for r in rows] == [("tiny-sd", "fp16-sdpa"), ("tiny-sd", "fp8-weight-only"),
                                                        ("tiny-sdxl", "fp16-sdpa"), ("tiny-sdxl", "fp8-weight-only")]
    assert all((Path(r["folder"]) / "model_index.json").exists() for r in rows)


def test_bad_arguments_and_a_machine_without_a_gpu_are_named():
    done = _run("--warp")
    assert done.returncode == 2 and "unknown argument --warp" in done.stderr
    if subprocess.run(["bash", "-c", "command -v nvidia-smi && nvidia-smi -L"], capture_output=True).returncode != 0:
        done = _run("--models", "sd15")
        assert done.returncode == 3 and "no NVIDIA GPU" in done.stderr
