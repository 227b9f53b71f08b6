"""Closed-loop users for bench/throughput.py: each user submits a generation, long-polls it to
the end, and submits the next; what each job took is recorded by the client's clock."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

FINAL = ("succeeded", "failed", "canceled")
PROMPTS = ["a red circle", "a small blue star on the left", "a large green square on a white background",
           "a yellow triangle at the top", "a purple circle on the right on a black background",
           "a photo of an orange star", "a small white square at the bottom on a blue background",
           "a black triangle on a yellow background"]


@dataclass(frozen=True)
class Done:
    user: int
    submitted: float  # time.monotonic()
    finished: float
    pictures: int
    status: str

    @property
    def latency_s(self) -> float:
        return self.finished - self.submitted


def sign_up_users(url: str, count: int, prefix: str) -> list[str]:
    """API keys of `count` new users."""
    keys = []
    for index in range(count):
        with httpx.Client(base_url=url, timeout=60) as browser:
            email = f"{prefix}{index}-{time.monotonic_ns()}@bench.example"
            browser.post("/api/v1/auth/signup", json={"email": email, "password": "bench password"}).raise_for_status()
            reply = browser.post("/api/v1/api-keys", json={"name": "bench"},
                                 headers={"X-CSRF-Token": browser.cookies["imagebooth_csrf"]})
            keys.append(reply.raise_for_status().json()["key"])
    return keys


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"})


def run_job(http: httpx.Client, n: int, prompt: str, seed: int | None = None) -> dict:
    """Submit and long-poll to the end; the job's last view."""
    body = {"prompt": prompt, "n": n} | ({"seed": seed} if seed is not None else {})
    reply = http.post("/api/v1/generations", json=body)
    reply.raise_for_status()
    job = reply.json()
    while job["status"] not in FINAL:
        job = http.get(f"/api/v1/generations/{job['id']}", params={"wait": 25}).json()
    return job


def closed_loop(url: str, keys: list[str], pictures: Callable[[int, int], int], seconds: float,
                think_s: float = 0.0) -> list[Done]:
    """Every user (one thread and connection each) runs jobs back to back for `seconds`;
    `pictures(user, k)` is the n of user's k-th job."""
    done: list[Done] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def user(index: int) -> None:
        with client(url, keys[index]) as http:
            k = 0
            while time.monotonic() < stop_at:
                n, started = pictures(index, k), time.monotonic()
                job = run_job(http, n, PROMPTS[(index + k) % len(PROMPTS)])
                with lock:
                    done.append(Done(index, started, time.monotonic(), n if job["status"] == "succeeded" else 0,
                                     job["status"]))
                k += 1
                time.sleep(think_s)

    threads = [threading.Thread(target=user, args=(index,), daemon=True) for index in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 300)
    return done


@dataclass(frozen=True)
class Figures:
    pictures_per_s: float
    jobs: int
    p50_s: float
    p95_s: float
    failed: int


def figures(done: list[Done], window_start: float, window_end: float) -> Figures:
    """Throughput of the jobs that ended inside the window, and their latencies."""
    inside = [job for job in done if window_start <= job.finished <= window_end]
    latencies = sorted(job.latency_s for job in inside) or [float("nan")]
    return Figures(
        pictures_per_s=sum(job.pictures for job in inside) / (window_end - window_start),
        jobs=len(inside), p50_s=statistics.median(latencies), p95_s=percentile(latencies, 0.95),
        failed=sum(job.status != "succeeded" for job in inside),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
