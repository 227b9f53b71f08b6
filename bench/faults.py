"""Fault injection: nothing accepted is ever lost (issue 12).

Runs ImageBooth (a uvicorn web process and real workers on the tiny random model) under
generation traffic from several users and breaks one thing per run:
1. redis     its own Redis (broker + credit gate) SIGKILLed mid-traffic and restarted empty;
2. postgres  its own Postgres cluster stopped for 10 s under traffic;
3. worker    the workers SIGKILLed mid-generation and mid-fine-tune, then started again;
4. web       the web process SIGKILLs itself between a commit and its send (injected).
Each run reports accepted (jobs committed, charged), ended (final and settled), retried (run
again after a worker was lost), lost (must be 0), time to resolve (from the fault's end to the
settlement of the last job accepted before it), HTTP 500s (must be 0), and whether every job
was charged exactly what it made and every balance adds up.
Backends: `postgres` (own Postgres + own Redis: all four) and `embedded` (SQLite + the
filesystem broker: the worker and web faults, the two that apply). Job timing settings are
the defaults (heartbeat 2 s, stale 30 s, resend 30 s, reconcile every 5 s).

    python bench/faults.py [--backend postgres|embedded|both] [--faults redis,postgres,worker,web]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fault_processes import OwnPostgres, OwnRedis, Service, base_env  # noqa: E402
from bench.fault_traffic import Outcome, Traffic, check_jobs, make_users, start_finetune, wait_until  # noqa: E402

FINETUNE_CONFIG = "steps: 40\nnum_class_images: 2\nclass_image_steps: 2\ncheckpoint_every: 10\n"
ALL_FAULTS = ("redis", "postgres", "worker", "web")
RESOLVE_DEADLINE_S = 180.0  # how long a run waits for its jobs before it counts the rest as lost


# --- a run: the service, the fault, the count ---------------------------------------------
class Run:
    def __init__(self, backend: str, fault: str, work: Path) -> None:
        self.backend, self.fault, self.work = backend, fault, work / f"{backend}-{fault}"
        (self.work / "data").mkdir(parents=True)
        model = work / "tiny-sd"
        config = work / "finetune.yaml"
        env = base_env(self.work / "data", model, config)
        self.redis = self.postgres = None
        if backend == "postgres":
            self.redis, self.postgres = OwnRedis(), OwnPostgres(self.work / "pg")
            self.redis.start()
            self.postgres.create()
            env.update(IMAGEBOOTH_REDIS_URL=self.redis.url, IMAGEBOOTH_DATABASE_URL=self.postgres.url)
        self.service = Service(env, self.work)
        self.database_url = env.get("IMAGEBOOTH_DATABASE_URL") or f"sqlite:///{self.work / 'data' / 'imagebooth.db'}"

    def __enter__(self) -> Run:
        self.service.migrate()
        self.service.start_web(die_at_send=5 if self.fault == "web" else 0)
        for queues in ("inference", "training"):
            self.service.start_worker(queues)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.service.stop()
        if self.redis is not None:
            self.redis.kill()
        if self.postgres is not None:
            self.postgres.stop()


def run_fault(backend: str, fault: str, work: Path) -> Outcome:
    with Run(backend, fault, work) as run:
        users = make_users(run.service, count=6, credits=1000)
        traffic = Traffic(run.service.url, users, run.database_url)
        traffic.wait_for_workers()
        window = INJECT[fault](run, traffic)
        traffic.stop()
        return check_jobs(run.database_url, fault, backend, traffic, window, RESOLVE_DEADLINE_S)


# --- the faults: each returns (began, ended), wall-clock -----------------------------------
def inject_redis(run: Run, traffic: Traffic) -> tuple[float, float]:
    assert run.redis is not None
    traffic.start()
    time.sleep(8)
    traffic.burst()  # jobs waiting in the queue, so that the kill loses messages
    began = time.time()
    run.redis.kill()  # broker and credit gate at once, with every queued message
    time.sleep(5)
    run.redis.start()  # empty
    ended = time.time()
    time.sleep(10)
    return began, ended


def inject_postgres(run: Run, traffic: Traffic) -> tuple[float, float]:
    assert run.postgres is not None
    traffic.start()
    time.sleep(8)
    traffic.burst()  # jobs running and queued when the database goes
    began = time.time()
    run.postgres.stop()
    time.sleep(10)
    run.postgres.start()
    ended = time.time()
    time.sleep(10)
    return began, ended


def inject_worker(run: Run, traffic: Traffic) -> tuple[float, float]:
    long_job = traffic.submit(traffic.users[0], n=4, steps=100)
    finetune = start_finetune(run.service.url, traffic.users[1])
    traffic.track_finetune(finetune)
    traffic.start()
    # killed once the generation runs and the fine-tune has a checkpoint (its step is past one)
    wait_until(lambda: traffic.status(long_job) == "running", 120, "the long generation to run")
    wait_until(lambda: traffic.finetune_step(finetune) > 10, 300, "the fine-tune's first checkpoint")
    began = time.time()
    for queues in ("inference", "training"):
        run.service.kill_worker(queues)
    for queues in ("inference", "training"):
        run.service.start_worker(queues)
    ended = time.time()
    time.sleep(10)
    return began, ended


def inject_web(run: Run, traffic: Traffic) -> tuple[float, float]:
    """Over at the death: the outbox repairs it whether or not the web process returns."""
    traffic.start()
    wait_until(lambda: run.service.web is not None and run.service.web.poll() is not None, 60,
               "the web process to die at its fifth send")
    died = time.time()
    run.service.start_web()  # as a supervisor would
    time.sleep(10)
    return died, died


INJECT = {"redis": inject_redis, "postgres": inject_postgres, "worker": inject_worker, "web": inject_web}
APPLIES = {"postgres": ALL_FAULTS, "embedded": ("worker", "web")}


# --- the web process of the `web` fault ---------------------------------------------------
def serve_web(port: int, die_at_send: int) -> None:
    """uvicorn in this process; with die_at_send=k, the k-th task send after a commit
    SIGKILLs the process instead (the job is committed and charged, and never sent by it)."""
    import signal

    import uvicorn

    if die_at_send:
        from app.jobs import outbox

        real_enqueue, sends = outbox.enqueue, [0]

        def enqueue_or_die(task_name: str, *ids: str) -> str:
            sends[0] += 1
            if sends[0] == die_at_send:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_enqueue(task_name, *ids)

        outbox.enqueue = enqueue_or_die
    uvicorn.run("app.main:create_app", factory=True, host="127.0.0.1", port=port, log_level="warning")


def prepare(work: Path) -> None:
    from workers.engine.tiny_model import write_tiny_pipeline

    write_tiny_pipeline(work / "tiny-sd")
    (work / "finetune.yaml").write_text(FINETUNE_CONFIG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgres", "embedded", "both"), default="both")
    parser.add_argument("--faults", default=",".join(ALL_FAULTS))
    parser.add_argument("--keep", type=Path, default=None, help="work (logs, databases) in this new folder, kept")
    parser.add_argument("--serve-web", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--die-at-send", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_web:
        serve_web(args.serve_web, args.die_at_send)
        return 0
    backends = ("postgres", "embedded") if args.backend == "both" else (args.backend,)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="imagebooth-faults-") as folder:
        work = args.keep or Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        work.chmod(0o755)  # the postgres user creates its cluster below it
        prepare(work)
        for backend in backends:
            for fault in args.faults.split(","):
                if fault in APPLIES[backend]:
                    outcomes.append(run_fault(backend, fault, work))
                    print(outcomes[-1].line(), flush=True)
    print(json.dumps([outcome.__dict__ for outcome in outcomes], indent=1))
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
