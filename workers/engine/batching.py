"""Several requests in one UNet batch: the worker's call for a batch of jobs.

    members = [BatchMember(request, stopped=...), ...]
    results = generate_batch(ModelRef(base=...), members, on_step)   # per member; None if it stopped

Requests share a batch when one UNet call can serve them all: the same model (base and
personal part), profile, size, sampler, steps and guidance (`batch_key`); prompts, negative
prompts and seeds are each request's own. Every request keeps its own scheduler and noise
(sampling.Lane), so its pictures are the ones it would get alone with the same seeds: bitwise
in fp32 (tests/workers/engine/test_engine_batching.py), within the tolerance bench/throughput.py
measures in bf16, whose kernels may round a row differently at another batch size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from workers.engine.inputs import GenerationRequest, GenerationResult, check_request
from workers.engine.loading import LoadedPipeline, ModelRef, get_pipeline
from workers.engine.sampling import ProgressCallback, SamplingPlan, make_lane, plan_request, result_of, sample_lanes


@dataclass(frozen=True)
class BatchMember:
    request: GenerationRequest
    # Asked after every step; True once the member's job is canceled: it leaves the batch.
    stopped: Callable[[], bool] = lambda: False


def batch_key(plan: SamplingPlan) -> tuple:
    """What requests must share to be sampled in one UNet call."""
    return plan.steps, plan.guidance_scale, plan.sampler, plan.width, plan.height


def generate_batch(model: ModelRef, members: list[BatchMember],
                   on_step: ProgressCallback | None = None) -> list[GenerationResult | None]:
    """Load (or find warm) `model` and run every member's request in shared UNet calls;
    `on_step(step, steps)` after each step (progress for the whole batch).

    Raises RequestError for a member's invalid request and ValueError when the members
    cannot share a batch: the caller groups them (app/generation/scheduling.py)."""
    for member in members:  # before spending seconds on a load
        check_request(member.request)
    profiles = {member.request.profile for member in members}
    if len(profiles) != 1:
        raise ValueError(f"profile: a batch runs one profile, not {sorted(profiles)}")
    started = time.perf_counter()
    loaded = get_pipeline(model, profiles.pop())
    load_s = time.perf_counter() - started
    results = run_batch(loaded, members, on_step)
    for result in results:
        if result is not None:
            result.timing = dataclasses.replace(result.timing, load_s=load_s, total_s=result.timing.total_s + load_s)
    return results


def run_batch(loaded: LoadedPipeline, members: list[BatchMember],
              on_step: ProgressCallback | None = None) -> list[GenerationResult | None]:
    """Every member's request on a loaded pipeline, in shared UNet and decoder calls."""
    # 1. plans (defaults filled in) that must agree on the batch key
    plans = [plan_request(loaded, member.request) for member in members]
    if len({batch_key(plan) for plan in plans}) != 1:
        raise ValueError("batch: requests differ in steps, guidance, sampler or size")
    # 2-3. lanes: embeddings and noise per request; 4-5. shared denoising and decoding
    backend = loaded.runner()
    started = time.perf_counter()
    with loaded.session():  # the shared base held, with the batch's one adapter active
        with torch.inference_mode():
            lanes = [make_lane(loaded, backend, plan, stopped=member.stopped)
                     for member, plan in zip(members, plans, strict=True)]
        encode_s = time.perf_counter() - started
        timing = sample_lanes(loaded, backend, lanes, on_step=on_step)
    timing = dataclasses.replace(timing, encode_s=encode_s, total_s=encode_s + timing.total_s)
    batch_images = sum(lane.rows for lane in lanes)
    return [result_of(loaded, lane.plan, lane.images, timing, backend.name, batch_images) if lane.active else None
            for lane in lanes]


def warm_batch_sizes(model: ModelRef, sizes: range, profile: str = "fast") -> bool:
    """Run one short batch of each size, so a compiled backend's static shapes (one per batch
    size, openvino_backend.py) are ready before the first job that needs them. False, running
    nothing, where the backend takes any shape as it comes (eager PyTorch): at SD 1.5 size the
    batches of 2-8 took 13 minutes of both cores for nothing."""
    if not sizes or not get_pipeline(model, profile).backend.static_shapes:
        return False
    for size in sizes:
        request = GenerationRequest(prompt="warm up", n=size, seeds=list(range(size)), steps=1, profile=profile)
        generate_batch(model, [BatchMember(request)])
    return True


