"""Load on one web process: mixed traffic at several concurrencies, and /healthz during uploads.

    python bench/load.py                      # mixed traffic at 10, 50, 100, 200 clients
    python bench/load.py --levels 50 --seconds 10
    python bench/load.py --uploads            # /healthz latency while 2 uploads of 5 large photos are checked
    python bench/load.py --source DIR         # serve the code of another checkout (a baseline)

It starts what it needs and stops it: its own Postgres cluster (initdb, as the `postgres`
user when run as root) and its own redis-server on free ports (or --database-url /
--redis-url), `imagebooth migrate`, then ONE web process (uvicorn, the app factory, no
worker: submissions queue and are canceled by the same client). 24 users with API keys
send, per request: 55% reads (/me, the history page, /models, one job), 15% long-polls
(GET a queued job with wait=1), 30% a submission followed by its cancel. Rate limits are
set far above the traffic (they are not what is measured); the job-count limit is the
free tier's (1), so a submission while the user's previous job is still queued is a 429.

Prints per level: requests/s, p50/p99 latency, answers by status, and errors (5xx and no
answer within --timeout); "0 errors" means every request got a real answer or a 503 with
Retry-After was counted separately as shed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
USERS = 24
PHOTO_SIDE = 8000


# --- servers -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Services:
    folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    pg_data: Path | None = None

    def start_postgres(self) -> str:
        port, data = free_port(), self.folder / "pg"
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        data.mkdir()
        if as_postgres:
            shutil.chown(self.folder, "postgres")
            shutil.chown(data, "postgres")
        subprocess.run([*as_postgres, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        options = f"-p {port} -k {data} -c max_connections=300 -c listen_addresses=127.0.0.1"
        subprocess.run([*as_postgres, "pg_ctl", "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"],
                       check=True, capture_output=True)
        self.pg_data, self._as_postgres = data, as_postgres
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def start_redis(self) -> str:
        port = free_port()
        self.processes.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_for_port(port)
        return f"redis://127.0.0.1:{port}/0"

    def start_web(self, env: dict[str, str], source: Path) -> tuple[str, subprocess.Popen]:
        port = free_port()
        log = open(self.folder / "web.log", "w")  # noqa: SIM115 - the process writes it until stop()
        web = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port),
             "--no-access-log", "--no-proxy-headers"],
            cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(web)
        wait_for_port(port)
        return f"http://127.0.0.1:{port}", web

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.pg_data is not None:
            subprocess.run([*self._as_postgres, "pg_ctl", "-D", str(self.pg_data), "-m", "fast", "stop"],
                           capture_output=True)


def printed_url_line(serve: subprocess.Popen, sink: Path) -> re.Match[str]:
    """The "running at http://..." line `imagebooth serve` prints (its match), after which the
    rest of its stdout (uvicorn's access log) keeps being appended to `sink`: an unread pipe
    fills after about 950 requests and then blocks the web server's event loop on a log write."""
    assert serve.stdout is not None
    for line in serve.stdout:
        found = re.search(r"running at (http://\S+?)/?\s.*pids ([\d, ]+)", line)
        if found:
            threading.Thread(target=_drain, args=(serve.stdout, sink), daemon=True).start()
            return found
    raise RuntimeError("imagebooth serve printed no URL")


def _drain(stream, sink: Path) -> None:
    with open(sink, "a") as out:
        shutil.copyfileobj(stream, out)


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


# --- traffic -----------------------------------------------------------------------------
@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, status: str, seconds: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(seconds)
        self.by_kind.setdefault(kind, []).append(seconds)


async def request(
    http: httpx.AsyncClient, tally: Tally, kind: str, method: str, path: str, **kwargs
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await http.request(method, path, **kwargs)
    except httpx.HTTPError as failed:
        tally.add(kind, f"no answer ({failed.__class__.__name__})", time.perf_counter() - started)
        return None
    shed = response.status_code == 503 and "retry-after" in response.headers
    tally.add(kind, "503 shed" if shed else str(response.status_code), time.perf_counter() - started)
    return response


async def one_client(http: httpx.AsyncClient, keys: list[str], tally: Tally, until: float, rng: random.Random) -> None:
    last_job: dict[str, str] = {}
    while time.monotonic() < until:
        key = rng.choice(keys)
        headers = {"Authorization": f"Bearer {key}"}
        roll = rng.random()
        if roll < 0.55:
            path = rng.choice(["/api/v1/me", "/api/v1/generations?limit=20", "/api/v1/models"]
                              + ([f"/api/v1/generations/{last_job[key]}"] if key in last_job else []))
            await request(http, tally, "read", "GET", path, headers=headers)
        elif roll < 0.70 and key in last_job:
            await request(http, tally, "long-poll", "GET", f"/api/v1/generations/{last_job[key]}?wait=1", headers=headers)
        else:
            created = await request(http, tally, "submit", "POST", "/api/v1/generations", headers=headers,
                                    json={"prompt": "a small blue star on the left on a yellow background"})
            if created is not None and created.status_code == 202:
                last_job[key] = created.json()["id"]
                await request(http, tally, "cancel", "POST", f"/api/v1/generations/{last_job[key]}/cancel", headers=headers)


async def run_level(url: str, keys: list[str], concurrency: int, seconds: float, timeout_s: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(*(one_client(http, keys, tally, until, random.Random(i)) for i in range(concurrency)))
    return tally


def sign_up_users(url: str, count: int) -> list[str]:
    keys = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for number in range(count):
            http.cookies.clear()
            answer = http.post("/api/v1/auth/signup", json={"email": f"load{number}@example.com", "password": "load test pw"})
            answer.raise_for_status()
            created = http.post("/api/v1/api-keys", json={"name": "load"}, headers={"X-CSRF-Token": answer.json()["csrf_token"]})
            keys.append(created.json()["key"])
    return keys


def report_level(concurrency: int, seconds: float, tally: Tally) -> None:
    total = sum(tally.statuses.values())
    p50 = statistics.median(tally.latencies) * 1000
    p99 = percentile(tally.latencies, 0.99) * 1000
    errors = {status: n for status, n in tally.statuses.items() if status.startswith(("5", "no answer")) and status != "503 shed"}
    shed = tally.statuses.get("503 shed", 0)
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(tally.statuses.items()))
    print(f"concurrency {concurrency:>3}: {total / seconds:7.1f} req/s  p50 {p50:7.1f} ms  p99 {p99:8.1f} ms  "
          f"errors {sum(errors.values())} {errors or ''}  shed {shed} ({100 * shed / max(total, 1):.1f}%)  [{statuses}]",
          flush=True)
    kinds = "  ".join(f"{kind} p50 {statistics.median(values) * 1000:.0f} / p99 {percentile(values, 0.99) * 1000:.0f} ms"
                      for kind, values in sorted(tally.by_kind.items()))
    print(f"                 {kinds}", flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# --- uploads -----------------------------------------------------------------------------
def large_photos(count: int, side: int) -> list[tuple[str, bytes]]:
    from PIL import Image

    photos = []
    for index in range(count):
        gradient = Image.linear_gradient("L").resize((side, side))
        picture = Image.merge("RGB", (gradient, gradient.rotate(90 * (index % 4)), Image.new("L", (side, side), 40 * index)))
        encoded = io.BytesIO()
        picture.save(encoded, format="JPEG", quality=85)
        photos.append((f"large-{index}.jpg", encoded.getvalue()))
    return photos


async def healthz_during_uploads(url: str, keys: list[str], photos: list[tuple[str, bytes]], uploads: int) -> None:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async def upload(key: str) -> int:
            files = [("images", (name, data, "image/jpeg")) for name, data in photos]
            answer = await http.post("/api/v1/subjects", data={"name": "large", "class_noun": "circle"}, files=files,
                                     headers={"Authorization": f"Bearer {key}"})
            return answer.status_code

        tasks = [asyncio.create_task(upload(key)) for key in keys[:uploads]]
        while not all(task.done() for task in tasks):
            started = time.perf_counter()
            (await http.get("/healthz")).raise_for_status()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
        statuses = [task.result() for task in tasks]
    ordered = sorted(latencies)
    print(f"uploads {statuses}: /healthz sampled {len(ordered)} times while they were checked: "
          f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {ordered[int(len(ordered) * 0.99)] * 1000:.1f} ms, "
          f"max {ordered[-1] * 1000:.1f} ms", flush=True)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- main --------------------------------------------------------------------------------
def environment(args: argparse.Namespace, database_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("IMAGEBOOTH_")}
    env.update({
        "IMAGEBOOTH_ENV": "test", "IMAGEBOOTH_DATA_DIR": str(data_dir), "IMAGEBOOTH_DATABASE_URL": database_url,
        "IMAGEBOOTH_REDIS_URL": redis_url, "IMAGEBOOTH_LOG_LEVEL": "WARNING",
        "IMAGEBOOTH_FREE_DAILY_CREDITS": "100000000",
        "IMAGEBOOTH_RATE_LIMIT_JOBS_PER_USER": "1000000/minute", "IMAGEBOOTH_RATE_LIMIT_JOBS_PER_IP": "1000000/minute",
        "IMAGEBOOTH_RATE_LIMIT_AUTH_PER_IP": "1000000/minute", "IMAGEBOOTH_RATE_LIMIT_UPLOADS_PER_IP": "1000000/minute",
    })
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="10,50,100,200", help="concurrencies (default 10,50,100,200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per level (default 20)")
    parser.add_argument("--timeout", type=float, default=30.0, help="a request unanswered this long is an error")
    parser.add_argument("--uploads", action="store_true", help="measure /healthz during uploads instead")
    parser.add_argument("--photo-side", type=int, default=PHOTO_SIDE)
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="checkout whose app is served")
    parser.add_argument("--database-url", help="use this (empty) Postgres database instead of a new cluster")
    parser.add_argument("--redis-url", help="use this Redis database (it is flushed) instead of a new server")
    args = parser.parse_args()

    services = Services(Path(tempfile.mkdtemp(prefix="imagebooth-load-")))
    try:
        database_url = args.database_url or services.start_postgres()
        redis_url = args.redis_url or services.start_redis()
        env = environment(args, database_url, redis_url, services.folder / "data")
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=args.source, env=env, check=True, capture_output=True)
        url, web = services.start_web(env, args.source)
        keys = sign_up_users(url, USERS)
        print(f"one web process (pid {web.pid}) serving {args.source}, Postgres + Redis, {USERS} users; "
              f"{os.cpu_count()} CPUs (shared)", flush=True)
        if args.uploads:
            photos = large_photos(5, args.photo_side)
            print(f"5 photos of {args.photo_side}x{args.photo_side}, {sum(len(d) for _, d in photos) / 1e6:.0f} MB in all")
            asyncio.run(healthz_during_uploads(url, keys, photos, uploads=2))
            print(f"web process peak RSS {peak_rss_mb(web.pid):.0f} MB")
            return 0
        for concurrency in [int(level) for level in args.levels.split(",")]:
            tally = asyncio.run(run_level(url, keys, concurrency, args.seconds, args.timeout))
            report_level(concurrency, args.seconds, tally)
        print(f"web process peak RSS {peak_rss_mb(web.pid):.0f} MB")
        return 0
    finally:
        services.stop()
        _show_web_errors(services.folder / "web.log")
        shutil.rmtree(services.folder, ignore_errors=True)


def _show_web_errors(log: Path) -> None:
    """A 500 is a bug: the web process's tracebacks, if it logged any."""
    if log.is_file() and "Traceback" in (text := log.read_text(errors="replace")):
        print("the web process logged errors:\n" + text[-8000:], file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
