"""`imagebooth serve` (web server + one worker beside it) and `imagebooth worker`."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import threading
import time

from app.config import get_settings

WORKER_STOP_TIMEOUT_S = 15
_PR_SET_PDEATHSIG = 1


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
    # 3. the worker, in its own process so a model load never blocks a web request
    worker = _start_worker()
    # 4. the web server; the URL is printed once it is really listening. Forwarded
    #    headers are the app's business (IMAGEBOOTH_TRUSTED_PROXIES), not uvicorn's.
    config = uvicorn.Config("app.main:create_app", factory=True, host=host, port=port, log_level="info",
                            proxy_headers=False)
    server = uvicorn.Server(config)
    threading.Thread(target=_announce, args=(server, host, port, worker), daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C after its graceful shutdown; ours follows
    finally:
        _stop_worker(worker)
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


def _start_worker() -> subprocess.Popen:
    command = [sys.executable, "-m", "app.cli", "worker", "--queues", "inference,training"]
    # Own session: a Ctrl-C in the terminal reaches only us, and we stop the worker once,
    # in order (a second signal would make Celery abandon its current task).
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    # If `serve` is killed outright, the kernel stops the worker too (Linux only).
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _announce(server, host: str, port: int, worker: subprocess.Popen) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"\nImageBooth is running at http://{shown_host}:{port}/  (worker pid {worker.pid}; Ctrl-C stops both)\n",
              flush=True)


def _stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown: finish the current task
    try:
        worker.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    print(f"worker stopped (exit {worker.returncode})", file=sys.stderr, flush=True)
