"""Parts of bench/generation.py: the compute limit and worker start.

Each prints its own lines; see bench/generation.py for the whole run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 8


# --- the compute limit ------------------------------------------------------------------------
def matmul_rate(dtype_name: str, size: int = 2048, repeats: int = 8) -> float:
    """Best GFLOP/s of a square matmul in this process (torch's threads)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def picture_flops(model: Path) -> dict:
    """GFLOP of one batch-1 picture's parts at the card's settings (matmuls and convolutions)."""
    import torch
    from diffusers import AutoencoderTiny
    from torch.utils.flop_counter import FlopCounterMode

    from workers.engine import ModelRef, PipelineCache
    from workers.engine.backend_choice import BackendSettings

    loaded = PipelineCache(backend=BackendSettings("torch")).get(ModelRef(base=model), "quality")
    pipe, defaults = loaded.pipe, loaded.defaults
    latent = torch.randn(1, pipe.unet.config.in_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    ids = torch.zeros(1, pipe.tokenizer.model_max_length, dtype=torch.long)
    fast = AutoencoderTiny.from_pretrained(model / defaults.fast_decoder) if defaults.fast_decoder else None

    def count(call) -> float:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            call()
        return counter.get_total_flops() / 1e9

    context = pipe.text_encoder(ids)[0].detach()
    rows = 2 if defaults.guidance_scale > 1 else 1
    flops = {
        "text": count(lambda: pipe.text_encoder(ids)),
        "unet_step": count(lambda: pipe.unet(torch.cat([latent] * rows), 999, encoder_hidden_states=torch.cat(
            [context] * rows))),
        "vae_decoder": count(lambda: pipe.vae.decode(latent)),
        "steps": defaults.steps, "text_passes": rows,
    }
    if fast is not None:
        flops["fast_decoder"] = count(lambda: fast.decode(latent))
    return flops


def print_limits(flops: dict, rates: dict) -> dict:
    before = flops["unet_step"] * flops["steps"] + flops["vae_decoder"]
    after = flops["unet_step"] * flops["steps"] + flops.get("fast_decoder", flops["vae_decoder"])
    print(f"FLOPs per picture: UNet {flops['unet_step']:.3f} GFLOP per guided step x {flops['steps']}, "
          f"VAE decoder {flops['vae_decoder']:.3f}"
          + (f", fast decoder {flops['fast_decoder']:.3f}" if "fast_decoder" in flops else "")
          + f", text {flops['text']:.3f} x {flops['text_passes']} per request")
    print(f"matmul rate here: fp32 {rates['float32']:.0f} GFLOP/s, bf16 {rates['bfloat16']:.0f} GFLOP/s")
    limits = {}
    for batch in (1, BATCH):
        text = flops["text"] * flops["text_passes"] / batch
        for label, work in (("full decoder", before + text), ("fast decoder", after + text)):
            limits[(batch, label)] = work / rates["float32"]
            print(f"  limit at batch {batch}, {label}: {work:.2f} GFLOP -> {work / rates['float32'] * 1e3:.1f} ms "
                  f"(fp32 rate), {work / rates['bfloat16'] * 1e3:.1f} ms (bf16 rate)")
    return limits


# --- (s) worker start with a cold and a warm compile cache ------------------------------------
START_SCRIPT = """
import sys, time
from pathlib import Path
from workers.engine import ModelRef, configure_process_cache, warm_up
from workers.engine.backend_choice import BackendSettings
configure_process_cache(backend=BackendSettings(cache_dir=Path(sys.argv[2])))
result = warm_up(ModelRef(base=Path(sys.argv[1])))
print("READY", time.time(), result.backend, flush=True)
"""


def part_start(args, root: Path) -> None:
    cache_dir = Path(tempfile.mkdtemp(prefix="imagebooth-bench-start-"))
    env = dict(os.environ, PYTHONPATH=str(root))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print("\n(s) worker start: a fresh process imports the engine, loads the base model and warms it")
    try:
        for label in ("cold compile cache", "warm compile cache", "warm compile cache"):
            # Ready is when the warm-up generation is done (what a worker waits for before its
            # first job); the process's exit (OpenVINO and torch teardown) is printed apart.
            launched = time.time()
            done = subprocess.run([sys.executable, "-c", START_SCRIPT, str(args.model), str(cache_dir)], env=env,
                                  cwd=root, capture_output=True, text=True, check=True)
            exited = time.time()
            _, ready, backend = next(line.split() for line in done.stdout.splitlines() if line.startswith("READY"))
            print(f"  {label:<20} {float(ready) - launched:6.2f} s to a warm engine ({backend}); "
                  f"the process exited {exited - launched:.2f} s after launch")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
