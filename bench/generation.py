"""Generation speed, one run, printing ratios against named baselines in this process.

(a) engine: per picture at batch 1 and batch 8, at the model card's sampler, steps and
    guidance, with each variant's prompt fidelity (workers.shapes.evaluate cases read back by
    workers.shapes.reader; meaningful only on the bundled shapes model), variants interleaved
    prompt by prompt so load from elsewhere hits all alike:
      stock diffusers  StableDiffusionPipeline, same scheduler and steps, fp32
      engine before    the fast profile on PyTorch with the full VAE decoder (main before issue 15)
      openvino f32/bf16  the compiled backend with the full decoder (the issue's peer)
      engine after     the fast profile as it loads now (backend by warm-up A/B, the card's
                       fast decoder)
    and the compute limit: the FLOPs of one picture (torch's FlopCounterMode on the UNet, the
    decoder and the text encoder) over the matmul rate measured here (fp32 and bf16).
(s) worker start: a fresh process loads and warms the base model, cold (empty compile cache)
    and warm (the cache the cold one left).
(b) service: end to end through the HTTP API (uvicorn) and a real worker on a Redis broker
    (or the filesystem broker with --embedded) versus the engine called directly in this
    process, n=1 and n=8, p50 and p95, plus the lag from the worker finishing a job to the
    client seeing it (long-poll).

    python bench/generation.py --model models/shapes-v1 [--prompts 48] [--runs 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from generation_costs import matmul_rate, part_start, picture_flops, print_limits

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a shared CPU: do not spin
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH = 8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shapes-v1")
    parser.add_argument("--prompts", type=int, default=48, help="fidelity prompts (a multiple of 8)")
    parser.add_argument("--runs", type=int, default=10, help="timed API / direct runs per n")
    parser.add_argument("--threads", type=int, default=None, help="torch threads here and in the worker")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--embedded", action="store_true", help="filesystem broker instead of Redis")
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--skip-start", action="store_true")
    return parser.parse_args(argv)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- (a) the variants, per picture, interleaved ----------------------------------------------
def stock_pipeline(model: Path):
    import torch
    from diffusers import StableDiffusionPipeline

    from app.catalog.model_card import model_defaults
    from workers.engine.schedulers import make_scheduler

    pipe = StableDiffusionPipeline.from_pretrained(
        model, local_files_only=True, dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler(pipe.scheduler.config, "UniPC")  # the engine's sampler, unset steps
    pipe.set_progress_bar_config(disable=True)
    defaults = model_defaults(model)

    def run(prompt: str, seeds: list[int]) -> list:
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        return pipe([prompt] * len(seeds), num_inference_steps=defaults.steps, guidance_scale=defaults.guidance_scale,
                    generator=generators).images
    return run


def card_without_fast_parts(model: Path, work: Path) -> Path:
    """The model folder as main had it: the same weights, a card naming no fast decoder."""
    folder = work / "model-before"
    folder.mkdir()
    for item in model.iterdir():
        if item.name != "imagebooth_model.json":
            (folder / item.name).symlink_to(item.resolve())
    card_file = model / "imagebooth_model.json"
    card = json.loads(card_file.read_text()) if card_file.exists() else {}
    card.pop("fast_decoder", None)
    (folder / "imagebooth_model.json").write_text(json.dumps(card))
    return folder


def engine_variant(model: Path, mode: str, cache_dir: Path, precision: str | None = None):
    from workers.engine import GenerationRequest, ModelRef, PipelineCache, generate
    from workers.engine.backend_choice import BackendSettings

    cache = PipelineCache(backend=BackendSettings(mode, cache_dir, precision))
    loaded = cache.get(ModelRef(base=model), "fast")

    def run(prompt: str, seeds: list[int]) -> list:
        return generate(loaded, GenerationRequest(prompt=prompt, n=len(seeds), seeds=seeds)).images
    for batch in (1, BATCH):  # compile (or import) both static shapes outside the timings
        run("warm up", list(range(batch)))
    return run, loaded


def variants(args, work: Path) -> dict:
    cache_dir = work / "compiled"
    before = card_without_fast_parts(args.model, work)
    found = {}
    if not args.skip_stock:
        found["stock diffusers (same sampler, fp32)"] = stock = stock_pipeline(args.model)
        for batch in (1, BATCH):
            stock("warm up", list(range(batch)))
    found["engine before (PyTorch fast profile)"], _ = engine_variant(before, "torch", cache_dir)
    found["openvino f32, full decoder"], _ = engine_variant(before, "openvino", cache_dir, "f32")
    found["openvino bf16, full decoder"], _ = engine_variant(before, "openvino", cache_dir, "bf16")
    after, loaded = engine_variant(args.model, "auto", cache_dir)
    found[f"engine after ({loaded.backend.name}{', fast decoder' if loaded.defaults.fast_decoder else ''})"] = after
    return found


def measure_interleaved(runs: dict, cases, batch: int) -> dict:
    """Seconds per picture and fidelity of each variant, the variants taking turns per prompt."""
    from workers.shapes.evaluate import score
    from workers.shapes.reader import read_picture

    seconds = {name: 0.0 for name in runs}
    readings: dict[str, list] = {name: [] for name in runs}
    truths: list = []
    chosen = cases[: max(1, len(cases) // batch)] if batch > 1 else cases
    for prompt, truth, seed in chosen:
        seeds = [seed + k for k in range(batch)]
        for name, run in runs.items():
            started = time.perf_counter()
            images = run(prompt, seeds)
            seconds[name] += time.perf_counter() - started
            readings[name] += [read_picture(image).attributes() for image in images]
        truths += [truth] * batch
    return {name: {"s": seconds[name] / len(truths), **score(readings[name], truths)} for name in runs}


def part_a(args) -> None:
    from workers.shapes.evaluate import eval_cases

    work = Path(tempfile.mkdtemp(prefix="imagebooth-bench-a-"))
    try:
        runs = variants(args, work)
        cases = eval_cases(args.prompts)
        print(f"\n(a) per picture, {args.prompts} prompts (batch 8: {args.prompts // BATCH} prompts x 8 seeds), "
              "variants interleaved")
        flops = picture_flops(args.model)
        limits = print_limits(flops, {dtype: matmul_rate(dtype) for dtype in ("float32", "bfloat16")})
        print(f"{'variant':<52} {'batch':>5} {'ms/pic':>8} {'x limit':>8} {'attr':>6} {'exact':>6} {'shape':>6} "
              f"{'vs stock':>9} {'vs before':>9}")
        for batch in (1, BATCH):
            results = measure_interleaved(runs, cases, batch)
            base = results["engine before (PyTorch fast profile)"]["s"]
            stock = results.get("stock diffusers (same sampler, fp32)", {}).get("s")
            for name, result in results.items():
                vs_stock = f"{stock / result['s']:.2f}x" if stock else "-"
                limit = limits[(batch, "fast decoder" if "fast decoder" in name else "full decoder")]
                print(f"{name:<52} {batch:>5} {result['s'] * 1e3:>8.1f} {result['s'] / limit:>7.2f}x "
                      f"{result['attribute_accuracy']:>6.3f} {result['all_five']:>6.3f} {result['shape']:>6.3f} "
                      f"{vs_stock:>9} {base / result['s']:>8.2f}x")
        print("   'x limit': ms per picture over the limit of the same work (its decoder) at the fp32 rate")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def engine_run(model: Path, prompt: str, seeds: list[int]) -> list:
    from workers.engine import GenerationRequest, ModelRef, generate_images

    return generate_images(ModelRef(base=model), GenerationRequest(prompt=prompt, n=len(seeds), seeds=seeds)).images


# --- (b) through the API and a worker versus the engine ------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def service_env(args, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBOOTH_")}
    env.update(IMAGEBOOTH_DATA_DIR=str(data_dir), IMAGEBOOTH_MODEL_PATH=str(args.model.resolve()),
               IMAGEBOOTH_LOG_LEVEL="WARNING",
               # Credits and rate limits are not what is measured here.
               IMAGEBOOTH_FREE_DAILY_CREDITS="1000000", IMAGEBOOTH_FREE_MAX_ACTIVE_JOBS="1000",
               IMAGEBOOTH_RATE_LIMITS_ENABLED="false")
    if not args.embedded:
        env["IMAGEBOOTH_REDIS_URL"] = args.redis_url
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def start_service(args, data_dir: Path):
    env = service_env(args, data_dir)
    cli = [sys.executable, "-m", "app.cli"]
    subprocess.run([*cli, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    log = open(data_dir / "service.log", "w")  # noqa: SIM115 - the child processes write to it until they stop
    worker = subprocess.Popen([*cli, "worker", "--queues", "inference", "--loglevel", "WARNING"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    port = _free_port()
    web = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port),
                            "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return worker, web, f"http://127.0.0.1:{port}"


def api_client(base_url: str):
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    browser = httpx.Client(base_url=base_url, timeout=60)
    browser.post("/api/v1/auth/signup", json={"email": "bench@example.com", "password": "bench password"})
    key = browser.post("/api/v1/api-keys", headers={"X-CSRF-Token": browser.cookies["imagebooth_csrf"]}).json()["key"]
    return httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {key}"})


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def api_job(http, n: int, seed: int) -> tuple[float, float, float, float]:
    """Seconds (POST to seeing success, worker finishing to seeing it, job created to a
    worker starting it, worker start to finish)."""
    started = time.perf_counter()
    job = http.post("/api/v1/generations", json={"prompt": "a red circle on a blue background", "n": n, "seed": seed})
    job.raise_for_status()
    body = job.json()
    while body["status"] not in ("succeeded", "failed", "canceled"):
        body = http.get(f"/api/v1/generations/{body['id']}", params={"wait": 25}).json()
    elapsed, seen = time.perf_counter() - started, time.time()
    if body["status"] != "succeeded":
        raise RuntimeError(f"job {body['id']} {body['status']}: {body.get('error')}")
    created, started, finished = (_stamp(body[key]) for key in ("created_at", "started_at", "finished_at"))
    return elapsed, seen - finished, started - created, finished - started


def part_b(args) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="imagebooth-bench-"))
    worker, web, base_url = start_service(args, data_dir)
    try:
        http = api_client(base_url)
        engine_run(args.model, "warm up", [0])
        broker = "filesystem broker" if args.embedded else f"Redis broker {args.redis_url}"
        print(f"\n(b) end to end: HTTP API + worker ({broker}, SQLite) vs engine direct, {args.runs} runs each")
        print(f"{'n':>2} {'direct p50':>11} {'p95':>8} {'API p50':>9} {'p95':>8} {'p50 ratio':>10} {'p95 ratio':>10} "
              f"{'seen lag p50':>13} {'max':>7}")
        for n in (1, BATCH):
            api_job(http, n, 1)  # first batch of this size: allocations outside the timings
            direct, api, lag, pickup, worked = [], [], [], [], []
            for run in range(args.runs):  # interleaved: load drift hits both alike
                elapsed, seen_lag, queue_s, work_s = api_job(http, n, 100 + run)
                api.append(elapsed)
                lag.append(seen_lag)
                pickup.append(queue_s)
                worked.append(work_s)
                started = time.perf_counter()
                engine_run(args.model, "a red circle on a blue background", [100 + run + k for k in range(n)])
                direct.append(time.perf_counter() - started)
            print(f"{n:>2} {pct(direct, .5) * 1e3:>9.0f}ms {pct(direct, .95) * 1e3:>6.0f}ms "
                  f"{pct(api, .5) * 1e3:>7.0f}ms {pct(api, .95) * 1e3:>6.0f}ms "
                  f"{pct(api, .5) / pct(direct, .5):>9.2f}x {pct(api, .95) / pct(direct, .95):>9.2f}x "
                  f"{pct(lag, .5) * 1e3:>11.0f}ms {max(lag) * 1e3:>5.0f}ms")
            print(f"   where it goes (p50): created -> worker starts {pct(pickup, .5) * 1e3:.0f}ms, "
                  f"worker start -> finish {pct(worked, .5) * 1e3:.0f}ms, finish -> client {pct(lag, .5) * 1e3:.0f}ms")
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        for process in (web, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import diffusers
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # prompt-truncation notices on small models
    diffusers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.model / "model_index.json").exists():
        print(f"bench: {args.model} is not a diffusers model folder", file=sys.stderr)
        return 2
    print(f"model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    part_a(args)
    if not args.skip_start:
        part_start(args, ROOT)
    if not args.skip_api:
        part_b(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
