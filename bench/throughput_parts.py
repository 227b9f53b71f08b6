"""Parts (q), (c) and (e) of bench/throughput.py: batched pictures against alone, the prompt
embedding cache, and a generation during a fine-tune on the embedded default."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench.closed_loop import FINAL, PROMPTS

ROOT = Path(__file__).resolve().parents[1]


# --- (q) batched against alone ------------------------------------------------------------
def part_quality(model: Path) -> None:
    from workers.engine import GenerationRequest, ModelRef, generate, get_pipeline
    from workers.engine.batching import BatchMember, run_batch

    print("\n(q) 16 pictures (own prompts and seeds) in two batches of 8 against each alone, same seeds")
    print("| profile (backend) | bitwise equal | max diff /255 | mean diff /255 |")
    print("| --- | ---: | ---: | ---: |")
    for profile in ("quality", "fast"):
        loaded = get_pipeline(ModelRef(base=model), profile)
        requests = [GenerationRequest(prompt=PROMPTS[k % len(PROMPTS)], seeds=[100 + k], steps=4, profile=profile)
                    for k in range(16)]
        together = [result for start in (0, 8) for result in run_batch(loaded, [BatchMember(r) for r in requests[start:start + 8]])]
        diffs = []
        for request, batched in zip(requests, together, strict=True):
            alone = generate(loaded, request)
            assert batched is not None
            diffs.append(np.abs(np.asarray(batched.images[0], dtype=int) - np.asarray(alone.images[0], dtype=int)))
        equal = sum(not diff.any() for diff in diffs)
        label = f"{profile} ({together[0].backend if together[0] else '?'})"
        print(f"| {label} | {equal}/16 | {max(int(d.max()) for d in diffs)} | {np.mean([d.mean() for d in diffs]):.4f} |")


# --- (c) the prompt-embedding cache --------------------------------------------------------
def part_cache(model: Path) -> None:
    from workers.engine import GenerationRequest, ModelRef, generate, get_pipeline
    from workers.engine.embeddings import prompt_embeddings

    loaded = get_pipeline(ModelRef(base=model), "fast")
    cold, warm = [], []
    for k, prompt in enumerate(PROMPTS * 2):
        request = GenerationRequest(prompt=prompt, seeds=[k], profile="fast")
        prompt_embeddings.clear()
        cold.append(generate(loaded, request).timing)  # the prompt and the empty negative prompt encoded
        warm.append(generate(loaded, request).timing)  # both from the cache
    encode_cold, encode_warm = (np.median([t.encode_s for t in runs]) * 1e3 for runs in (cold, warm))
    total_cold, total_warm = (np.median([t.total_s for t in runs]) * 1e3 for runs in (cold, warm))
    print("\n(c) prompt-embedding cache, one n=1 request (fast profile), median of 16")
    print("| cache | encode (text-encoder passes) | whole request |")
    print("| --- | ---: | ---: |")
    print(f"| cold (prompt and negative prompt encoded) | {encode_cold:.2f} ms | {total_cold:.1f} ms |")
    print(f"| warm (both from the LRU) | {encode_warm:.2f} ms | {total_warm:.1f} ms |")
    print(f"saved per request: {encode_cold - encode_warm:.2f} ms ({(encode_cold - encode_warm) / total_cold:.1%} "
          f"of a batch-1 request); the empty negative prompt alone is half of the passes")


# --- (e) the embedded default: a generation while a fine-tune trains ----------------------
def part_embedded(work: Path, model: Path) -> None:
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBOOTH_")}
    env.update(IMAGEBOOTH_DATA_DIR=str(work / "var"), IMAGEBOOTH_MODEL_PATH=str(model.resolve()), HF_HUB_OFFLINE="1")
    with open(work / "serve.log", "w") as log:
        serve = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(_free_port())], cwd=ROOT,
                                 env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = _printed_url(serve, work / "serve.log")
        # two new users: a free account has one job at a time, so the picture is another user's
        with httpx.Client(base_url=url, timeout=120) as http, httpx.Client(base_url=url, timeout=120) as other:
            _sign_up(http, "trainer")
            _sign_up(other, "drawer")
            first = _generate(other)  # a new user's first picture (the worker warms up meanwhile)
            finetune = _start_finetune(http)
            while (state := http.get(f"/api/v1/finetunes/{finetune}").json())["step"] < 20:  # well into training
                assert state["status"] in ("queued", "running"), state
                time.sleep(0.2)
            during = _generate(other)
            step = http.get(f"/api/v1/finetunes/{finetune}").json()
            http.post(f"/api/v1/finetunes/{finetune}/cancel", headers=_csrf(http))
        print("\n(e) embedded default (imagebooth serve, SQLite, filesystem broker): one picture while a fine-tune trains")
        print("| picture | submit -> started | submit -> done | fine-tune |")
        print("| --- | ---: | ---: | --- |")
        print(f"| first, idle | {first[0]:.2f} s | {first[1]:.2f} s | - |")
        print(f"| during the fine-tune | {during[0]:.2f} s | {during[1]:.2f} s | training, step {step['step']} of "
              f"{step['total_steps']} |")
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)


def _free_port() -> int:
    from bench.load import free_port

    return free_port()


def _printed_url(serve: subprocess.Popen, sink: Path) -> str:
    from bench.load import printed_url_line

    return printed_url_line(serve, sink).group(1)


def _csrf(http: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": http.cookies["imagebooth_csrf"]}


def _sign_up(http: httpx.Client, name: str) -> None:
    http.post("/api/v1/auth/signup", json={"email": f"{name}@bench.example", "password": "bench password"}).raise_for_status()


def _generate(http: httpx.Client) -> tuple[float, float]:
    """(submit -> started, submit -> done) of one picture, by the client's clock and the job's stamps."""
    from datetime import datetime

    submitted = time.time()
    job = http.post("/api/v1/generations", json={"prompt": "a red circle"}, headers=_csrf(http)).raise_for_status().json()
    while job["status"] not in FINAL:
        job = http.get(f"/api/v1/generations/{job['id']}", params={"wait": 25}).json()
    assert job["status"] == "succeeded", job
    started = datetime.fromisoformat(job["started_at"]).timestamp()
    return started - submitted, time.time() - submitted


def _photo(background: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (128, 128), background)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((24, 24, 104, 104), fill=(240, 210, 40))
    for y in range(40, 100, 12):  # stripes: what makes this circle a subject of its own
        draw.line((30, y, 98, y), fill=(20, 20, 20), width=3)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _start_finetune(http: httpx.Client) -> str:
    files = [("images", (f"striped-{k}.png", _photo(color), "image/png"))
             for k, color in enumerate([(40, 80, 220), (220, 40, 40), (245, 245, 245)])]
    subject = http.post("/api/v1/subjects", data={"name": "Striped", "class_noun": "circle"}, files=files,
                        headers=_csrf(http)).raise_for_status().json()
    return http.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={}, headers=_csrf(http)).raise_for_status().json()["id"]
