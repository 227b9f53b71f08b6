"""LoRA personal models as adapters on one warm base: latency in turn, memory, switch time.

One run, in this process, as an inference worker holds its models (workers.engine's cache):
(l) latency: 8 LoRA personal models used in turn against one of them repeated (the baseline),
    rounds interleaved so that load from elsewhere hits both alike; ms per picture, median;
(m) memory: the process's resident memory after each of 8 adapters is loaded and used, per
    extra model, against the adapter's file size;
(w) switch: the time to make another cached adapter active (what a job on another user's
    model pays before its first step), and a cache hit's whole `get`.

    python bench/adapters.py --model models/shapes-v1            # the bundled model: all three
    python bench/adapters.py --model PATH --no-latency          # e.g. the SD 1.5-size random folder

The LoRAs are random (workers.engine.tiny_model.write_lora: UNet attention and text encoder, the
DreamBooth export's layout) at --rank, so file sizes are what a trained one's are.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPT = "a sks circle on a red background"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "shapes-v1")
    parser.add_argument("--models", type=int, default=8, help="LoRA personal models")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (the bundled preset's lora_rank)")
    parser.add_argument("--rounds", type=int, default=6, help="latency rounds (each: all models once, one model as often)")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--no-latency", action="store_true", help="memory and switch time only")
    parser.add_argument("--threads", type=int)
    return parser.parse_args(argv)


def rss_mb() -> float:
    """Resident memory now, after giving freed heap back (glibc), so growth is what is held."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_loras(base: Path, folder: Path, count: int, rank: int) -> list[Path]:
    from workers.engine.tiny_model import write_lora

    return [write_lora(base, folder / f"user{k}", with_text_encoder=True, seed=100 + k, rank=rank) for k in range(count)]


def one_picture(cache, ref, profile: str, seed: int) -> float:
    from workers.engine import GenerationRequest, generate

    started = time.perf_counter()
    generate(cache.get(ref, profile), GenerationRequest(prompt=PROMPT, seeds=[seed], profile=profile))
    return time.perf_counter() - started


def part_memory(cache, args, refs) -> None:
    print(f"\n(m) memory, {len(refs)} adapters loaded one after another, then each used once")
    files = [ref.personal / "pytorch_lora_weights.safetensors" for ref in refs]
    before = rss_mb()
    loaded = []
    for ref in refs:
        cache.get(ref, args.profile)
        loaded.append(rss_mb())
    if not args.no_latency:  # a picture each (minutes at SD 1.5 size on a CPU)
        for ref in refs:
            one_picture(cache, ref, args.profile, 0)
    used = rss_mb()
    file_mb = statistics.mean(f.stat().st_size for f in files) / 2**20
    adapters = cache.adapter_set(args.model, args.profile)
    growth = [b - a for a, b in zip([before, *loaded], loaded)]
    per_extra = (loaded[-1] - loaded[0]) / max(1, len(loaded) - 1)
    print(f"  RSS with the warm base {before:8.1f} MB; after each adapter: " + ", ".join(f"{r:.1f}" for r in loaded))
    print("  growth per model loaded: " + ", ".join(f"{g:+.2f}" for g in growth) + " MB")
    print(f"  adapter file {file_mb:.2f} MB, its weights in memory {adapters.nbytes / len(refs) / 2**20:.2f} MB")
    print(f"  per extra model (2nd..{len(refs)}th): {per_extra:+.2f} MB = {per_extra / file_mb:.2f}x the file "
          f"(target <= 2x); the first adds the layers' adapter wrappers ({growth[0]:+.2f} MB)")
    if not args.no_latency:
        print(f"  after one picture with each: {used - loaded[-1]:+.2f} MB more in all (first runs, text embeddings)")
    unet = sum(p.numel() * p.element_size() for p in adapters.pipe.unet.parameters()) / 2**20
    text = sum(p.numel() * p.element_size() for p in adapters.pipe.text_encoder.parameters()) / 2**20
    print(f"  before (a fused private copy of the UNet and text encoder per model): {unet + text:.1f} MB each")


def part_switch(cache, args, refs) -> None:
    print("\n(w) switch between cached adapters")
    adapters = cache.adapter_set(args.model, args.profile)
    names = [cache.get(ref, args.profile).adapter for ref in refs]
    switches, hits = [], []
    for k in range(10 * len(names)):
        started = time.perf_counter()
        adapters.activate(names[k % len(names)])
        switches.append(time.perf_counter() - started)
        started = time.perf_counter()
        cache.get(refs[k % len(refs)], args.profile)
        hits.append(time.perf_counter() - started)
    layers = adapters.layers
    print(f"  activate another adapter: median {statistics.median(switches) * 1e3:.2f} ms, "
          f"max {max(switches) * 1e3:.2f} ms ({layers} adapter layers)")
    print(f"  cache hit (get of a loaded model): median {statistics.median(hits) * 1e3:.3f} ms")


def part_latency(cache, args, refs) -> None:
    print(f"\n(l) latency, batch 1, the card's settings, {args.rounds} rounds of {len(refs)} pictures each way")
    for ref in refs:  # every adapter loaded and each path run once before timing
        one_picture(cache, ref, args.profile, 0)
    in_turn, repeated = [], []
    for round_index in range(args.rounds):
        for k, ref in enumerate(refs):
            in_turn.append(one_picture(cache, ref, args.profile, round_index * 100 + k))
        for k in range(len(refs)):
            repeated.append(one_picture(cache, refs[0], args.profile, round_index * 100 + k))
    turn_ms, repeat_ms = statistics.median(in_turn) * 1e3, statistics.median(repeated) * 1e3
    base_ms = statistics.median(one_picture(cache, type(refs[0])(base=args.model), args.profile, k)
                                for k in range(len(refs))) * 1e3
    backend = cache.get(refs[0], args.profile).backend.name
    print(f"  one model repeated  {repeat_ms:7.1f} ms per picture  (baseline; {backend})")
    print(f"  all {len(refs)} in turn       {turn_ms:7.1f} ms per picture  = {turn_ms / repeat_ms:.2f}x (target <= 1.2x)")
    print(f"  the base model      {base_ms:7.1f} ms per picture  ({cache.get(type(refs[0])(base=args.model), args.profile).backend.name})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from workers.engine import ModelRef, PipelineCache

    if args.threads:
        torch.set_num_threads(args.threads)
    args.model = args.model.resolve()
    cache = PipelineCache(adapter_cache_bytes=2**34)
    started = time.perf_counter()
    cache.get(ModelRef(base=args.model), args.profile)
    print(f"model {args.model} ({args.profile} profile, {torch.get_num_threads()} threads): "
          f"base loaded in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory(prefix="imagebooth-bench-adapters-") as work:
        refs = [ModelRef(base=args.model, personal=folder)
                for folder in write_loras(args.model, Path(work), args.models, args.rank)]
        part_memory(cache, args, refs)
        part_switch(cache, args, refs)
        if not args.no_latency:
            part_latency(cache, args, refs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
