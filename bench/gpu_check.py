"""The GPU check's measurements (bench/gpu_check.sh runs this; it has not been run: no GPU here).

    python -m bench.gpu_check --cache DIR [--models sd15,sdxl] [--steps 4] [--dry-run]

For each random real-size model (built into DIR on first use, workers/random_models.py) and
each check: one UNet step's median time at the family's size (SD 1.5 512 px, SDXL 1024 px) and
at the other size, batch 2 (classifier-free guidance), as a ratio to fp16 eager SDPA:

    fp16 | bf16            weights and activations
    sdpa | math            PyTorch's scaled_dot_product_attention, or the unfused math kernel
    compile                torch.compile(mode="max-autotune-no-cudagraphs") of the bf16 UNet
    int8 | fp8             torchao weight-only int8 / fp8 (skipped, with the reason, when
                           torchao is missing or the GPU has no fp8: compute capability < 8.9)

--dry-run prints the plan (and builds the models) without touching a GPU: what CI tests.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

SIZES = {"sd15": (512, 1024), "sdxl": (1024, 512), "tiny-sd": (64,), "tiny-sdxl": (64,)}
CHECKS = ("fp16-sdpa", "bf16-sdpa", "fp16-math", "bf16-compile", "int8-weight-only", "fp8-weight-only")


@dataclass(frozen=True)
class Check:
    model: str
    pixels: int
    name: str


def plan(models: list[str], checks: list[str] | None = None) -> list[Check]:
    unknown = [m for m in models if m not in SIZES]
    if unknown:
        raise ValueError(f"gpu check: unknown model(s) {', '.join(unknown)} (known: {', '.join(SIZES)})")
    chosen = list(checks or CHECKS)
    bad = [c for c in chosen if c not in CHECKS]
    if bad:
        raise ValueError(f"gpu check: unknown check(s) {', '.join(bad)} (known: {', '.join(CHECKS)})")
    return [Check(model, pixels, name) for model in models for pixels in SIZES[model] for name in chosen]


def _unet(folder: Path, check: str):
    import torch
    from diffusers import UNet2DConditionModel

    dtype = torch.bfloat16 if check.startswith(("bf16", "int8", "fp8")) else torch.float16
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", dtype=dtype).to("cuda").eval()
    if check.endswith("math"):
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
    if check == "bf16-compile":
        unet = torch.compile(unet, mode="max-autotune-no-cudagraphs")
    if check in ("int8-weight-only", "fp8-weight-only"):
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

        if check.startswith("fp8") and torch.cuda.get_device_capability() < (8, 9):
            raise RuntimeError("no fp8 on this GPU (compute capability < 8.9)")
        quantize_(unet, Int8WeightOnlyConfig() if check.startswith("int8") else Float8WeightOnlyConfig())
    return unet, dtype


def measure(folder: Path, check: Check, repeats: int) -> float:
    import torch

    unet, dtype = _unet(folder, check.name)
    side = check.pixels // 8
    latents = torch.randn(2, 4, side, side, device="cuda", dtype=dtype)
    hidden = torch.randn(2, 77, unet.config.cross_attention_dim, device="cuda", dtype=dtype)
    added = None
    if unet.config.get("addition_embed_type") == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        added = {"text_embeds": torch.randn(2, pooled, device="cuda", dtype=dtype),
                 "time_ids": torch.tensor([[check.pixels, check.pixels, 0, 0, check.pixels, check.pixels]] * 2,
                                          device="cuda", dtype=dtype)}
    times = []
    with torch.no_grad():
        for k in range(repeats + 2):  # two warm-ups (compile: its compilation)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            unet(latents, 500, hidden, added_cond_kwargs=added)
            torch.cuda.synchronize()
            if k >= 2:
                times.append(time.perf_counter() - t0)
    del unet
    torch.cuda.empty_cache()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from workers.random_models import cached_model

    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="where the random models are built")
    parser.add_argument("--models", default="sd15,sdxl")
    parser.add_argument("--checks", default=",".join(CHECKS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dry-run", action="store_true", help="build the models and print the plan only")
    args = parser.parse_args(argv)
    checks = plan(args.models.split(","), args.checks.split(","))
    folders = {model: cached_model(model, args.cache) for model in dict.fromkeys(c.model for c in checks)}
    if args.dry_run:
        for check in checks:
            print(json.dumps({"model": check.model, "folder": str(folders[check.model]), "pixels": check.pixels,
                              "check": check.name}))
        return 0
    import torch

    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    baseline: dict[tuple[str, int], float] = {}
    for check in checks:
        try:
            seconds = measure(folders[check.model], check, args.repeats)
        except Exception as problem:  # noqa: BLE001 - a check that cannot run is reported, the rest go on
            print(f"{check.model} {check.pixels} px {check.name}: skipped ({type(problem).__name__}: {problem})")
            continue
        key = (check.model, check.pixels)
        if check.name == "fp16-sdpa":
            baseline[key] = seconds
        ratio = f"{baseline[key] / seconds:.2f}x vs fp16-sdpa" if key in baseline else "no fp16-sdpa baseline"
        print(f"{check.model} {check.pixels} px {check.name}: {seconds * 1000:.1f} ms per UNet step at batch 2, {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
