"""Real-size proof and figures (heavy; not in CI): the SD 1.5-size and SDXL random models.

    python -m bench.realsize api MODEL [--config FT.yaml] [--single-worker]   # through the HTTP API
    python -m bench.realsize figures MODEL [--size PX]                        # in-process figures
    python -m bench.realsize precision MODEL                                  # the UNet's dtype/layout choices

MODEL is a folder or single file (`python -m workers.random_models sd15 DIR`, then
`python -m workers.single_file DIR OUT.safetensors --configs`).

`api`: `imagebooth serve` on the model (or, with --single-worker, the web app plus one
worker for both queues started as serve starts its workers: one warm copy of the model in
memory instead of two), a new user's picture at the family's size, a LoRA DreamBooth job
(FT.yaml: the few steps and small class-image/validation counts), the personal model's
picture; the training checkpoints' size on disk (largest seen while the job runs: they are
deleted when it ends) and each worker's peak RSS (VmHWM).
`figures`: load time, peak RSS, seconds per UNet step at batch 1 and 2, VAE decode, text
encoding, on the engine's fast profile as the worker loads it.
`precision`: one UNet step at batch 1 (the size's latents), fp32 as the baseline (first and
last, to show drift), against bf16 weights, channels_last, int8 dynamic Linear (torch.ao;
torchao is not installed) and torch.compile, one after another in one process, each variant
on its own freshly loaded copy.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FINAL = ("succeeded", "failed", "canceled")


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak resident set (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- api -------------------------------------------------------------------------------------
class Watch(threading.Thread):
    """Polls the workers' peak RSS and the size of the training checkpoints folder."""

    def __init__(self, pids: list[int], data_dir: Path):
        super().__init__(daemon=True)
        self.pids, self.data_dir = pids, data_dir
        self.rss = {pid: 0.0 for pid in pids}
        self.checkpoint_bytes = 0
        self.checkpoint_files: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            for pid in self.pids:
                with contextlib.suppress(OSError, ValueError):  # a worker that has exited
                    self.rss[pid] = max(self.rss[pid], peak_rss_mb(pid))
            folders = list((self.data_dir / "storage").glob("finetunes/*/work/checkpoints")) + \
                list(self.data_dir.glob("**/finetunes/*/work/checkpoints"))
            for folder in set(folders):
                files = {f.name: f.stat().st_size for f in folder.glob("*.ckpt") if f.is_file()}
                if sum(files.values()) > self.checkpoint_bytes:
                    self.checkpoint_bytes, self.checkpoint_files = sum(files.values()), files


def _photo(background: tuple[int, int, int], size: int) -> bytes:
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((size // 5, size // 5, size * 4 // 5, size * 4 // 5), fill=(240, 210, 40))
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _csrf(http) -> dict[str, str]:
    return {"X-CSRF-Token": http.cookies["imagebooth_csrf"]}


def _wait(http, path: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = http.get(path, params={"wait": 25}).json()
        if state["status"] in FINAL:
            return state
        time.sleep(1)
    raise TimeoutError(f"{path} not done in {timeout:.0f} s")


def _generate(http, steps: int, model: str | None = None) -> tuple[float, tuple[int, int]]:
    from PIL import Image

    started = time.monotonic()
    body = {"prompt": "a sks circle" if model else "a red circle", "steps": steps, "seed": 1}
    if model:
        body["model"] = model
    job = http.post("/api/v1/generations", json=body, headers=_csrf(http)).raise_for_status().json()
    job = _wait(http, f"/api/v1/generations/{job['id']}", 3600)
    assert job["status"] == "succeeded", job
    url = job["images"][0]["url"] if isinstance(job["images"][0], dict) else job["images"][0]
    picture = Image.open(io.BytesIO(http.get(url).raise_for_status().content))
    return time.monotonic() - started, picture.size


def _start(model: Path, data: Path, config: Path | None, single_worker: bool) -> tuple[list[subprocess.Popen], str, list[int]]:
    from bench.load import free_port, printed_url_line

    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBOOTH_")}
    env.update(IMAGEBOOTH_DATA_DIR=str(data), IMAGEBOOTH_MODEL_PATH=str(model.resolve()), HF_HUB_OFFLINE="1")
    if model.is_file():
        env["IMAGEBOOTH_MODEL_CONFIG_PATH"] = str(model.parent.resolve())  # `single_file --configs` puts them there
    if config is not None:
        env["IMAGEBOOTH_FINETUNE_CONFIG"] = str(config.resolve())
    port = free_port()
    log = open(data / "serve.log", "w")  # noqa: SIM115 - open for the processes' lifetime
    if not single_worker:
        serve = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=log, text=True)
        found = printed_url_line(serve, data / "serve.log")
        return [serve], found.group(1), [int(p) for p in re.findall(r"\d+", found.group(2))]
    env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)  # as serve gives its inference worker
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", "inference,training", "--migrate"],
                              cwd=ROOT, env=env, stdout=log, stderr=log)
    web = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)],
                           cwd=ROOT, env=env, stdout=log, stderr=log)
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            time.sleep(1)
    return [web, worker], url, [worker.pid]


def run_api(model: Path, work: Path, config: Path | None, single_worker: bool, steps: int) -> None:
    import shutil

    import httpx

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    processes, url, pids = _start(model, work, config, single_worker)
    watch = Watch(pids, work)
    watch.start()
    print(f"# bench/realsize.py api {model} ({'one worker' if single_worker else 'imagebooth serve'}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine_load()}", flush=True)
    print(f"started (URL printed) in {time.monotonic() - started:.1f} s", flush=True)
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            http.post("/api/v1/auth/signup", json={"email": "real@bench.example", "password": "bench password"}
                      ).raise_for_status()
            seconds, size = _generate(http, steps)
            print(f"generation ({steps} steps, cold): {seconds:.1f} s, {size[0]}x{size[1]} px", flush=True)
            files = [("images", (f"p{k}.png", _photo(color, 512), "image/png"))
                     for k, color in enumerate([(40, 80, 220), (220, 40, 40), (245, 245, 245), (30, 160, 60)])]
            subject = http.post("/api/v1/subjects", data={"name": "Disc", "class_noun": "circle"}, files=files,
                                headers=_csrf(http)).raise_for_status().json()
            t0 = time.monotonic()
            finetune = http.post(f"/api/v1/subjects/{subject['id']}/finetunes", json={"method": "lora"},
                                 headers=_csrf(http)).raise_for_status().json()["id"]
            state = _wait(http, f"/api/v1/finetunes/{finetune}", 4 * 3600)
            print(f"LoRA DreamBooth job: {state['status']} in {time.monotonic() - t0:.1f} s "
                  f"({state.get('total_steps')} steps) {state.get('error') or ''}", flush=True)
            assert state["status"] == "succeeded", state
            seconds, size = _generate(http, steps, state["model_id"])
            print(f"personal model generation ({steps} steps): {seconds:.1f} s, {size[0]}x{size[1]} px", flush=True)
        card = next(work.rglob("imagebooth_model.json"), None)
        if card is not None:
            import json

            saved = json.loads(card.read_text())
            print(f"job timings: {saved.get('timings')}; LoRA file "
                  f"{sum(f.stat().st_size for f in card.parent.glob('*.safetensors')) / 2**20:.1f} MB")
    finally:
        watch.stop.set()
        watch.join()
        print(f"training checkpoints on disk (largest seen): {watch.checkpoint_bytes / 2**20:.1f} MB "
              f"{ {k: round(v / 2**20, 1) for k, v in watch.checkpoint_files.items()} }")
        print("worker peak RSS (VmHWM): " + ", ".join(f"pid {pid} {mb / 1024:.2f} GB" for pid, mb in watch.rss.items()))
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        print(f"total {time.monotonic() - started:.0f} s; {machine_load()}", flush=True)


# --- figures -----------------------------------------------------------------------------------
def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_figures(model: Path, repeats: int) -> None:
    import torch

    from workers.engine.backend_choice import BackendSettings
    from workers.engine.loading import load_base
    from workers.engine.profiles import resolve_profile

    print(f"# bench/realsize.py figures {model}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{machine_load()}; torch threads {torch.get_num_threads()}", flush=True)
    device = torch.device("cpu")
    profile = resolve_profile("fast", device)
    t0 = time.perf_counter()
    _, _, backend = load_base(model, profile, device, BackendSettings(mode="torch"))
    pipe = backend.pipe
    print(f"load (fast profile, PyTorch backend; unet {pipe.unet.dtype}): {time.perf_counter() - t0:.1f} s, "
          f"peak RSS {peak_rss_mb() / 1024:.2f} GB", flush=True)
    side = pipe.unet.config.sample_size
    sdxl = getattr(pipe, "tokenizer_2", None) is not None
    tokens = pipe.tokenizer(["a red circle"], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                            return_tensors="pt").input_ids
    ids_2 = tokens if sdxl else None
    with torch.no_grad():
        text_s = _median_s(lambda: backend.encode_text(tokens, None, ids_2), repeats)
        embeddings = backend.encode_text(tokens, None, ids_2)
        print(f"text encoding (1 prompt): {text_s:.2f} s", flush=True)
        for batch in (1, 2):
            latents = torch.randn(batch, 4, side, side)
            cond = embeddings.expand(batch, -1, -1)
            step = _median_s(lambda x=latents, c=cond: backend.predict_noise(x, torch.tensor(500), c), repeats)
            print(f"UNet step, batch {batch} ({side * 8} px): {step:.2f} s", flush=True)
        decode = _median_s(lambda: backend.decode(torch.randn(1, 4, side, side)), repeats)
        print(f"VAE decode (1 picture): {decode:.2f} s; peak RSS {peak_rss_mb() / 1024:.2f} GB", flush=True)


# --- precision ---------------------------------------------------------------------------------
def run_precision(model: Path, repeats: int) -> None:
    import warnings

    import torch
    from diffusers import UNet2DConditionModel

    print(f"# bench/realsize.py precision {model}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{machine_load()}; torch threads {torch.get_num_threads()}", flush=True)

    def fresh() -> UNet2DConditionModel:
        # Each variant gets its own copy, loaded when it runs and dropped after: two fp32 SDXL
        # UNets (10.3 GB each) beside each other do not fit in this machine's memory.
        unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", local_files_only=True,
                                                    dtype=torch.float32)
        return unet.eval().requires_grad_(False)

    def int8(unet):
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return quantize_dynamic(unet, {torch.nn.Linear}, dtype=torch.qint8)

    variants = {
        "fp32 (baseline)": lambda u: u,
        "bf16 weights": lambda u: u.to(torch.bfloat16),
        "channels_last fp32": lambda u: u.to(memory_format=torch.channels_last),
        "bf16 + channels_last": lambda u: u.to(torch.bfloat16).to(memory_format=torch.channels_last),
        "int8 dynamic Linear (torch.ao)": int8,
        "torch.compile fp32": torch.compile,
        "fp32 (baseline, again)": lambda u: u,  # how far the machine drifted over the run
    }
    config = fresh().config
    side, width = config.sample_size, config.cross_attention_dim
    latents, hidden = torch.randn(1, 4, side, side), torch.randn(1, 77, width)
    extra: dict[str, torch.Tensor] = {}
    if config.addition_embed_type == "text_time":  # SDXL: pooled text embedding and the six size ids
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        extra = {"text_embeds": torch.randn(1, pooled), "time_ids": torch.tensor([[side * 8.0] * 2 + [0.0] * 2
                                                                                   + [side * 8.0] * 2])}
    results: dict[str, float] = {}
    with torch.no_grad():
        for name, make in variants.items():
            unet = make(fresh())
            dtype = torch.bfloat16 if name.startswith("bf16") else torch.float32
            x, h = latents.to(dtype), hidden.to(dtype)
            added = {k: v.to(dtype) for k, v in extra.items()} or None

            def step(unet=unet, x=x, h=h, added=added):
                return unet(x, 500, h, added_cond_kwargs=added)

            t0 = time.perf_counter()
            step()  # warm-up (compile: the compilation)
            warm = time.perf_counter() - t0
            results[name] = _median_s(step, repeats)
            print(f"{name}: {results[name]:.2f} s/step (first call {warm:.1f} s), "
                  f"{results['fp32 (baseline)'] / results[name]:.2f}x vs fp32; peak RSS "
                  f"{peak_rss_mb() / 1024:.2f} GB", flush=True)
            del unet, step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.realsize", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api")
    api.add_argument("model", type=Path)
    api.add_argument("--config", type=Path, help="fine-tune YAML (IMAGEBOOTH_FINETUNE_CONFIG)")
    api.add_argument("--single-worker", action="store_true", help="one worker for both queues (one model copy)")
    api.add_argument("--steps", type=int, default=4, help="sampler steps of each generation")
    api.add_argument("--work", type=Path, default=Path("/tmp/imagebooth-realsize"))
    for name in ("figures", "precision"):
        part = commands.add_parser(name)
        part.add_argument("model", type=Path)
        part.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "api":
        run_api(args.model, args.work, args.config, args.single_worker, args.steps)
    elif args.command == "figures":
        run_figures(args.model, args.repeats)
    else:
        run_precision(args.model, args.repeats)


if __name__ == "__main__":
    main()
