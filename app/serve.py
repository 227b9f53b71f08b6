"""`imagebooth serve` (web server + a worker per queue beside it) and `imagebooth worker`."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from app.config import get_settings

WORKER_STOP_TIMEOUT_S = 15
_PR_SET_PDEATHSIG = 1
TRAINING_NICE = 10  # the scheduler's weight for nice 10 is about a tenth of nice 0's
# Two model copies may take this share of memory; the rest is activations, the web server,
# the database and the page cache the weights are read through.
MODEL_MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class WorkerPlan:
    """One worker process that `serve` starts: its queue, torch/OpenMP threads and niceness."""

    queue: str
    threads: int
    nice: int


def embedded_workers(cores: int, model_bytes: int = 0, memory_bytes: int | None = None) -> list[WorkerPlan]:
    """A worker per queue, so a generation never waits for a fine-tune to finish.

    The inference worker may use every core (its bursts are short); the fine-tune trains on
    one core fewer and niced, so the kernel hands a generation the cores the moment it needs
    them, and OpenMP threads of the two never outnumber the cores by more than one.

    Each worker holds its own copy of the model (`model_bytes`, as served). Where two copies
    do not fit in `memory_bytes` (SDXL, 14 GB in fp32, on a 24 GB machine), one worker serves
    both queues instead: its fine-tune drops the serving copy before loading its own, so a
    generation waits while a fine-tune trains, but neither is killed for memory."""
    if memory_bytes is not None and 2 * model_bytes > MODEL_MEMORY_SHARE * memory_bytes:
        return [WorkerPlan("inference,training", threads=max(1, cores), nice=0)]
    return [WorkerPlan("inference", threads=max(1, cores), nice=0),
            WorkerPlan("training", threads=max(1, cores - 1), nice=TRAINING_NICE)]


def serving_bytes(model_path) -> int:
    """The configured model's weights held in fp32 (the engine's CPU dtype without native bf16,
    and a fine-tune's frozen UNet): 0 where the path cannot be read (still being trained)."""
    from app.catalog.checkpoint import ModelPathError, parameter_count

    try:
        return 4 * parameter_count(model_path)
    except (ModelPathError, OSError):
        return 0


def memory_bytes() -> int | None:
    """This machine's memory, or its cgroup's limit where that is lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()  # noqa: SIM115 - one read
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def run_worker(
    queues: str, pool: str = "solo", concurrency: int = 1, loglevel: str = "INFO", migrate: bool = False
) -> int:
    from workers.celery_app import QUEUES, app

    names = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        print(f"imagebooth: unknown queue(s) {unknown or names}; choose from {', '.join(QUEUES)}", file=sys.stderr)
        return 2
    if not _schema_ready(migrate) or not _model_servable():
        return 1
    argv = [
        "worker",
        "--queues", ",".join(names),
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--loglevel", loglevel,
        "--hostname", f"{'-'.join(names)}@%h",
        # Mingle and gossip sync state between many workers at start-up; we keep job
        # state in the database, so they only cost start-up time.
        "--without-mingle",
        "--without-gossip",
    ]
    if get_settings().uses_filesystem_broker:
        argv.append("--without-heartbeat")  # no broker connection to keep alive
    app.worker_main(argv)
    return 0


def _schema_ready(migrate: bool) -> bool:
    """The database's schema is this code's (migrated first when asked); else one line
    on stderr saying what to do."""
    from sqlalchemy.exc import OperationalError

    from app.migrate import ensure_current_schema

    try:
        problem = ensure_current_schema(migrate)
    except OperationalError as unreachable:
        problem = f"imagebooth: cannot reach the database: {str(unreachable.orig).strip().splitlines()[0]}"
    if problem:
        print(problem, file=sys.stderr)
    return problem is None


def _model_servable() -> bool:
    """The configured model is one the engine serves, checked without loading it; else one line
    on stderr naming the problem. A path that does not exist yet (the bundled model still
    training) is left to the worker, whose jobs fail with that message until it appears."""
    from app.catalog.checkpoint import ModelPathError, check_model_path

    settings = get_settings()
    if not settings.model_path.exists():
        return True
    try:
        check_model_path(settings.model_path, settings.model_config_path)
    except ModelPathError as problem:
        print(f"imagebooth: {problem} (IMAGEBOOTH_MODEL_PATH)", file=sys.stderr)
        return False
    return True


def serve(host: str, port: int, migrate: bool = False) -> int:
    import uvicorn

    # 1. the port: a busy one is named before the worker starts and the model loads, with the way out
    if not _port_free(host, port):
        print(f"imagebooth: port {port} on {host} is already in use (another ImageBooth, or another server).\n"
              f"Pick another one: make run PORT={port + 1}   or   imagebooth serve --port {port + 1}", file=sys.stderr)
        return 1
    # 2. schema: the embedded database is ours to create and upgrade; any other must
    #    already be current (or migrated now, with --migrate)
    settings = get_settings()
    if not _schema_ready(migrate or settings.is_sqlite) or not _model_servable():
        return 1
    # 3. the workers, each in its own process so a model load never blocks a web request
    model_bytes, memory = serving_bytes(settings.model_path), memory_bytes()
    plans = embedded_workers(os.cpu_count() or 1, model_bytes, memory)
    if len(plans) == 1:
        print(f"imagebooth: one worker serves generations and fine-tunes: two copies of this model "
              f"({model_bytes / 1e9:.1f} GB each in fp32) do not fit in this machine's "
              f"{(memory or 0) / 1e9:.1f} GB; a generation waits while a fine-tune trains", file=sys.stderr)
    workers = [_start_worker(plan) for plan in plans]
    # 4. the web server; the URL is printed once it is really listening. Forwarded
    #    headers are the app's business (IMAGEBOOTH_TRUSTED_PROXIES), not uvicorn's.
    config = uvicorn.Config("app.main:create_app", factory=True, host=host, port=port, log_level="info",
                            proxy_headers=False)
    server = uvicorn.Server(config)
    threading.Thread(target=_announce, args=(server, host, port, workers), daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C after its graceful shutdown; ours follows
    finally:
        _stop_workers(workers)
    return 0 if server.started else 1


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _start_worker(plan: WorkerPlan) -> subprocess.Popen:
    command = [sys.executable, "-m", "app.cli", "worker", "--queues", plan.queue]
    env = {**os.environ, "OMP_NUM_THREADS": str(plan.threads)}  # torch and OpenVINO read it at start
    # Own session: a Ctrl-C in the terminal reaches only us, and we stop the worker once,
    # in order (a second signal would make Celery abandon its current task).
    return subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=lambda: _as_child(plan.nice))


def _as_child(nice: int) -> None:
    os.nice(nice)
    # If `serve` is killed outright, the kernel stops the worker too (Linux only).
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _announce(server, host: str, port: int, workers: list[subprocess.Popen]) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        pids = ", ".join(str(worker.pid) for worker in workers)
        names = "inference and training worker" if len(workers) > 1 else "worker (inference and training)"
        print(f"\nImageBooth is running at http://{shown_host}:{port}/  ({names} pids {pids}; "
              "Ctrl-C stops them all)\n", flush=True)


def _stop_workers(workers: list[subprocess.Popen]) -> None:
    running = [worker for worker in workers if worker.poll() is None]
    for worker in running:
        worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown: finish the current task
    for worker in running:
        try:
            worker.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        print(f"worker stopped (exit {worker.returncode})", file=sys.stderr, flush=True)
