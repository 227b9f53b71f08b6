"""Throughput for many users (issue 14): cross-request batching on and off, fair turns under a
flood, and a generation during a fine-tune on the embedded default.

    python bench/throughput.py                        # every part, the bundled model
    python bench/throughput.py --seconds 10 --levels 1,16 --skip-embedded

(t) Closed loop through the API against ONE inference worker: 1, 4, 16 and 32 users each
    asking for n=1, a mixed load (16 users, n drawn from 1..8), and one user's n=8 jobs (the
    reference), each with batching on (IMAGEBOOTH_MAX_BATCH_IMAGES=8) and off (=1), the two
    taking turns level by level in this one run. Printed: pictures/s, p50/p95 latency, the
    ratio to the n=8 reference (same setting) and on/off.
(f) Flood: another user's single pictures while one user keeps 4 jobs of n=8 queued, against
    the same user's single pictures on the idle worker (p50 and p95 over p50 idle).
(q) Batched pictures against the same seeds alone, in process: fp32 (PyTorch) bitwise, and
    the fast profile (bf16 where the CPU has it) max and mean difference in 1/255.
(c) The prompt-embedding cache: a request's text-encoder passes cold and warm.
(e) Embedded default (`imagebooth serve`, no settings: SQLite, filesystem broker): a fine-tune
    is started, and once it trains a one-picture generation is submitted; printed: submit to
    started (target <= 5 s) and to done.

(t) and (f) start their own Postgres cluster and redis-server (bench/load.py), one uvicorn web
process and the worker; credits and rate limits are out of the way. The OpenVINO compile cache
lives in --work and is kept between runs, so workers start warm.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench import closed_loop as loop
from bench.load import Services

ROOT = Path(__file__).resolve().parents[1]
FLOOD_DEPTH = 4  # the flooding user's jobs in flight at once


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shapes-v1")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per load level")
    parser.add_argument("--warm", type=float, default=3.0, help="load before each window, not measured")
    parser.add_argument("--levels", default="1,4,16,32", help="concurrent users asking for n=1")
    parser.add_argument("--work", type=Path, default=Path("/tmp/imagebooth-bench-throughput"))
    for part in ("service", "quality", "cache", "embedded"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    return parser.parse_args(argv)


# --- the service ---------------------------------------------------------------------------
class Bench:
    """Postgres, Redis and a web process for the whole run; the worker restarted per setting."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.worker, self.batch = args, None, 0
        folder = args.work / "service"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.services = Services(folder)
        self.env = service_env(args.work / "data", args.model)
        self.env.update(IMAGEBOOTH_DATABASE_URL=self.services.start_postgres(),
                        IMAGEBOOTH_REDIS_URL=self.services.start_redis())
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True)
        self.url, _ = self.services.start_web(self.env, ROOT)
        self.log_path = folder / "worker.log"

    def use(self, batch: int) -> None:
        """Run the worker with IMAGEBOOTH_MAX_BATCH_IMAGES=batch (restarted when it changes)."""
        if self.worker is not None and batch == self.batch:
            return
        self.stop_worker()
        self.log_path.write_text("")
        with open(self.log_path, "a") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker", "--queues", "inference", "--loglevel", "INFO"],
                cwd=ROOT, env={**self.env, "IMAGEBOOTH_MAX_BATCH_IMAGES": str(batch)}, stdout=log,
                stderr=subprocess.STDOUT)
        self.batch = batch
        ready = "batch sizes" if batch > 1 else "inference worker warm"
        deadline = time.monotonic() + 300
        while ready not in self.log_path.read_text(errors="replace"):
            if time.monotonic() > deadline or self.worker.poll() is not None:
                raise RuntimeError(f"worker not ready:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.worker = None

    def stop(self) -> None:
        self.stop_worker()
        self.services.stop()


def service_env(data_dir: Path, model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBOOTH_")}
    env.update(IMAGEBOOTH_DATA_DIR=str(data_dir), IMAGEBOOTH_MODEL_PATH=str(model.resolve()), HF_HUB_OFFLINE="1",
               IMAGEBOOTH_LOG_LEVEL="WARNING", IMAGEBOOTH_RATE_LIMITS_ENABLED="false",
               # credits and the job-count limit are not what is measured
               IMAGEBOOTH_FREE_DAILY_CREDITS="100000000", IMAGEBOOTH_FREE_MAX_ACTIVE_JOBS="1000")
    return env


def measure(bench: Bench, keys: list[str], pictures, think_s: float = 0.0) -> loop.Figures:
    args = bench.args
    started = time.monotonic()
    done = loop.closed_loop(bench.url, keys, pictures, args.warm + args.seconds, think_s)
    return loop.figures(done, started + args.warm, started + args.warm + args.seconds)


# --- (t) levels, batching on and off ------------------------------------------------------
def part_levels(bench: Bench, keys: list[str]) -> dict:
    mixed = random.Random(14)
    mixed_n = {(user, k): mixed.randint(1, 8) for user in range(16) for k in range(10_000)}
    loads = [("n=8, 1 user (reference)", keys[:1], lambda user, k: 8)]
    loads += [(f"n=1, {users} users", keys[:users], lambda user, k: 1) for users in map(int, bench.args.levels.split(","))]
    loads.append(("mixed n=1..8, 16 users", keys[:16], lambda user, k: mixed_n[(user, k)]))
    results: dict = {}
    order = [8, 1]
    for name, users, pictures in loads:
        for batch in order:
            bench.use(batch)
            results[(name, batch)] = measure(bench, users, pictures)
            print(f"  {name:26s} batch<={batch}: {_row(results[(name, batch)])}", flush=True)
        order.reverse()  # the setting running now goes first at the next level: one restart per level
    return results


def _row(figures: loop.Figures) -> str:
    failed = f", {figures.failed} failed" if figures.failed else ""
    return (f"{figures.pictures_per_s:6.1f} pictures/s  p50 {figures.p50_s * 1e3:6.0f} ms  p95 {figures.p95_s * 1e3:6.0f} ms"
            f"  ({figures.jobs} jobs{failed})")


def print_levels(results: dict) -> None:
    reference = {batch: results[("n=8, 1 user (reference)", batch)].pictures_per_s for batch in (8, 1)}
    print("\n| load | batching | pictures/s | p50 | p95 | x n=8 reference | on / off |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (name, batch), figures in results.items():
        off = results[(name, 1)].pictures_per_s
        print(f"| {name} | {'on (8)' if batch == 8 else 'off (1)'} | {figures.pictures_per_s:.1f} | "
              f"{figures.p50_s * 1e3:.0f} ms | {figures.p95_s * 1e3:.0f} ms | "
              f"{figures.pictures_per_s / reference[batch]:.2f}x | {figures.pictures_per_s / off:.2f}x |")
    on16, off16 = results[("n=1, 16 users", 8)], results[("n=1, 16 users", 1)]
    print(f"\ntargets at 16 users: {on16.pictures_per_s / reference[8]:.2f}x the n=8 reference (>= 0.8), "
          f"{on16.pictures_per_s / off16.pictures_per_s:.2f}x batching off (>= 2.5), "
          f"p95 {on16.p95_s * 1e3:.0f} ms vs {off16.p95_s * 1e3:.0f} ms off (lower)")


# --- (f) a flood of n=8 jobs and another user's single picture -----------------------------
def part_flood(bench: Bench, flooder: str, single: str, batch: int) -> None:
    bench.use(batch)
    with loop.client(bench.url, single) as http:
        idle = [_timed(http) for _ in range(15)]
    started = time.monotonic()
    stop_at = started + bench.args.warm + bench.args.seconds
    flood = threading.Thread(target=loop.closed_loop, args=(bench.url, [flooder] * FLOOD_DEPTH, lambda u, k: 8,
                                                            bench.args.warm + bench.args.seconds + 5), daemon=True)
    flood.start()
    time.sleep(bench.args.warm)
    during = []
    with loop.client(bench.url, single) as http:
        while time.monotonic() < stop_at:
            during.append(_timed(http))
            time.sleep(0.2)
    flood.join()
    idle_p50 = loop.percentile(idle, 0.5)
    p50, p95 = loop.percentile(during, 0.5), loop.percentile(during, 0.95)
    print(f"| batching {'on (8)' if batch > 1 else 'off (1)'} | {idle_p50 * 1e3:.0f} ms | {p50 * 1e3:.0f} ms | "
          f"{p95 * 1e3:.0f} ms | {p50 / idle_p50:.2f}x | {p95 / idle_p50:.2f}x | {len(during)} |", flush=True)


def _timed(http: httpx.Client) -> float:
    started = time.monotonic()
    job = loop.run_job(http, 1, "a red circle on a blue background")
    assert job["status"] == "succeeded", job
    return time.monotonic() - started


def part_service(args: argparse.Namespace) -> None:
    bench = Bench(args)
    try:
        keys = loop.sign_up_users(bench.url, 34, "user")
        print(f"\n(t) closed loop through the API, one inference worker, {args.seconds:.0f} s windows", flush=True)
        print_levels(part_levels(bench, keys[:32]))
        print(f"\n(f) another user's single picture while one user keeps {FLOOD_DEPTH} jobs of n=8 in line")
        print("| worker | idle p50 | during flood p50 | p95 | p50 / idle | p95 / idle | pictures |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for batch in (8, 1):
            part_flood(bench, keys[32], keys[33], batch)
    finally:
        bench.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    from bench import throughput_parts as parts

    if not args.skip_quality:
        parts.part_quality(args.model)
    if not args.skip_cache:
        parts.part_cache(args.model)
    if not args.skip_service:
        part_service(args)
    if not args.skip_embedded:
        parts.part_embedded(args.work / "embedded", args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
