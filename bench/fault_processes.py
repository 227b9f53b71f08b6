"""The processes bench/faults.py starts and breaks: its own Redis and Postgres (never the
machine's shared ones), and ImageBooth's web and worker processes. Each is stopped or killed
by the PID this module started; nothing else is touched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class OwnRedis:
    """A redis-server of our own, without persistence: a restart comes back empty."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@dataclass
class OwnPostgres:
    """A Postgres cluster of our own (initdb as the `postgres` user, which initdb needs)."""

    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/imagebooth"

    def _as_postgres(self, *command: str) -> None:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")
        self.start()
        self._as_postgres("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "imagebooth")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"),
                          "-w", "start")

    def stop(self) -> None:
        """Stop our postmaster (pg_ctl signals the PID in its own data folder's pid file)."""
        self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")


@dataclass
class Service:
    """ImageBooth's web and worker processes for one backend, restartable after a kill."""

    env: dict[str, str]
    log_dir: Path
    web_port: int = field(default_factory=free_port)
    web: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "a")  # noqa: SIM115 - the child writes to it until it stops
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def migrate(self) -> None:
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True)

    def start_web(self, die_at_send: int = 0) -> None:
        """uvicorn; with `die_at_send`, a web process that SIGKILLs itself at that send after
        a commit (bench/faults.py --serve-web)."""
        command = [sys.executable, str(ROOT / "bench" / "faults.py"), "--serve-web", str(self.web_port),
                   "--die-at-send", str(die_at_send)]
        self.web = self._spawn("web", command)
        wait_for_port(self.web_port, timeout_s=60)

    def start_worker(self, queues: str) -> None:
        command = [sys.executable, "-m", "app.cli", "worker", "--queues", queues, "--loglevel", "INFO"]
        self.workers[queues] = self._spawn(f"worker-{queues.replace(',', '-')}", command)

    def kill_worker(self, queues: str) -> None:
        _kill(self.workers.pop(queues))

    def stop(self) -> None:
        for process in [self.web, *self.workers.values()]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    _kill(process)
        self.workers.clear()


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()


def base_env(data_dir: Path, model: Path, finetune_config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBOOTH_")}
    env.update(
        IMAGEBOOTH_DATA_DIR=str(data_dir), IMAGEBOOTH_MODEL_PATH=str(model), IMAGEBOOTH_FINETUNE_CONFIG=str(finetune_config),
        IMAGEBOOTH_ENV="development", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
        # What is measured is jobs and credits under faults, not the limits in front of them.
        IMAGEBOOTH_RATE_LIMITS_ENABLED="false", IMAGEBOOTH_FREE_DAILY_CREDITS="0",
        IMAGEBOOTH_FREE_MAX_ACTIVE_JOBS="1000", IMAGEBOOTH_PREMIUM_MAX_ACTIVE_JOBS="1000",
    )
    return env
