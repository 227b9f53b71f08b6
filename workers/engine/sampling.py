"""The sampling loop: prompt to PIL images, as a fixed sequence of small named steps.

    1. check inputs         (inputs.check_request)
    2. encode prompt        each distinct prompt and the negative prompt once, one row per image
    3. prepare latents      one CPU torch.Generator per image, seeded with that image's seed
    4. denoise              classifier-free guidance as ONE batched UNet forward [uncond; cond]
    5. decode               VAE (or the fast profile's distilled decoder), to PIL

Steps 2-3 make a `Lane` per request; steps 4-5 run any number of lanes (the worker's batch of
jobs, batching.py) through shared UNet and decoder calls.

The networks run on the pipeline's backend (backends.py: PyTorch, or OpenVINO compiled for
this CPU); everything per request - seeds, scheduler, guidance, progress - stays here.

Why our own loop and not StableDiffusionPipeline.__call__: the stock call draws one batch of
noise from one generator (or needs a generator list we would build anyway), has no per-request
scheduler (it mutates the pipeline's own, which a warm shared pipeline cannot allow), and its
progress hooks are per-step callbacks with tensors we do not need. The steps below are the
same maths, so the stock pipeline with the same scheduler gives the same images.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from workers.engine.backends import Backend
from workers.engine.embeddings import prompt_embeddings
from workers.engine.inputs import GenerationRequest, GenerationResult, Timing, check_request, resolve_seeds
from workers.engine.loading import LoadedPipeline, ModelRef, TorchModules, get_pipeline
from workers.engine.model_info import ModelInfo
from workers.engine.profiles import Profile
from workers.engine.schedulers import make_scheduler, needs_generators

# (step done, total steps), called after every denoising step; the caller throttles its own
# writes. An exception raised from it stops the run and propagates: that is how a job is
# cancelled mid-generation.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class SamplingPlan:
    """A request with every default filled in; what actually runs and goes into the PNG."""

    prompts: list[str]  # one per image
    negative_prompt: str
    seeds: list[int]
    steps: int
    guidance_scale: float
    sampler: str
    width: int
    height: int

    @property
    def uses_guidance(self) -> bool:
        # At scale <= 1 the unconditional half is either unused (1) or an extrapolation the
        # other way (< 1) nobody asks for; skipping it halves the UNet work.
        return self.guidance_scale > 1.0


def default_size(info: ModelInfo) -> tuple[int, int]:
    """The model's native size: UNet sample size x VAE scale factor (width, height)."""
    side = info.unet_config["sample_size"] * info.vae_scale_factor
    return side, side


def plan_request(loaded: LoadedPipeline, request: GenerationRequest) -> SamplingPlan:
    """1. Check inputs and fill defaults from the profile and the model's card."""
    check_request(request)
    if request.profile != loaded.profile.name:
        raise ValueError(f"profile: request wants {request.profile!r}, pipeline is {loaded.profile.name!r}")
    width, height = default_size(loaded.info)
    return SamplingPlan(
        prompts=request.image_prompts(),
        negative_prompt=request.negative_prompt or "",
        seeds=resolve_seeds(request),
        steps=request.steps or (None if loaded.defaults.sampler else loaded.profile.steps) or loaded.defaults.steps,
        guidance_scale=float(
            loaded.defaults.guidance_scale if request.guidance_scale is None else request.guidance_scale
        ),
        # a few-step model's own sampler (its card or scheduler) wins over the profile's
        sampler=request.sampler or loaded.defaults.sampler or loaded.profile.sampler,
        width=request.width or width,
        height=request.height or height,
    )


def _token_ids(tokenizer, text: str):
    return tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt")


def _tokens(info: ModelInfo, text: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Token ids (and mask) for the text encoder; SDXL's second tokenizer's ids as the third."""
    tokens = _token_ids(info.tokenizer, text)
    second = info.tokenizer_2
    return (tokens.input_ids, tokens.attention_mask if info.uses_attention_mask else None,
            _token_ids(second, text).input_ids if second is not None else None)


def _embed(loaded: LoadedPipeline, backend: Backend, text: str) -> torch.Tensor:
    """Hidden states of one text, through the LRU keyed by model and text (embeddings.py)."""
    # a LoRA adapter that leaves the text encoder alone encodes on its base's backend
    # (adapters.py), so it shares the base's entries
    text_backend = getattr(backend, "text_backend", backend)
    shares_base = text_backend is getattr(backend, "base", None)
    model_key = "" if shares_base else str(loaded.ref.personal or "")
    return prompt_embeddings.get(text_backend, model_key, text, lambda words: _encode(loaded.info, backend, words))


def _encode(info: ModelInfo, backend: Backend, text: str) -> torch.Tensor:
    hidden = backend.encode_text(*_tokens(info, text))
    if not text and info.force_zeros_for_empty_prompt:
        # SDXL was trained with zeros, not the empty prompt's encoding, as "no negative prompt"
        return torch.zeros_like(hidden)
    return hidden


@dataclass
class Lane:
    """One request's rows in a UNet batch: its own scheduler, noise and embeddings.

    Several requests share each UNet call (the worker batches jobs), but nothing else: each
    lane steps its own scheduler on its own rows, so its pictures are the ones it gets alone
    (the scheduler's maths is per element), and a lane that stops (its job was canceled)
    leaves the batch at the next step without touching the others' state.
    """

    plan: SamplingPlan
    scheduler: Any
    cond: torch.Tensor  # (n, tokens, width): each image's prompt
    uncond: torch.Tensor | None  # the negative prompt's, one row per image; None without guidance
    latents: torch.Tensor
    generators: list[torch.Generator]
    on_progress: ProgressCallback | None = None
    stopped: Callable[[], bool] = lambda: False
    active: bool = True
    images: list = field(default_factory=list)  # PIL, once decoded

    @property
    def rows(self) -> int:
        return len(self.plan.seeds)


def encode_prompt(loaded: LoadedPipeline, backend: Backend, plan: SamplingPlan) -> tuple[torch.Tensor, torch.Tensor | None]:
    """2. Text embeddings of one request: (cond of each image, uncond x n or None without CFG).

    Each distinct text goes through the text encoder once (and then not again while the LRU
    holds it). fp32 and contiguous once here, so no step of the loop copies them again.
    """
    distinct = list(dict.fromkeys(plan.prompts))
    cond = torch.cat([_embed(loaded, backend, text) for text in distinct])
    cond = cond[[distinct.index(text) for text in plan.prompts]].float().contiguous()
    if not plan.uses_guidance:
        return cond, None
    uncond = _embed(loaded, backend, plan.negative_prompt).expand(len(plan.seeds), -1, -1)
    return cond, uncond.float().contiguous()


def prepare_latents(info: ModelInfo, plan: SamplingPlan, scheduler, device: torch.device):
    """3. Starting noise, image k drawn from its own generator seeded with seeds[k].

    Drawn on the CPU in fp32 and then moved, so a seed gives the same noise on every machine
    and in every profile; and because each image has its own generator, image k of a batch
    starts from exactly the noise its seed gives alone. The generators are returned for
    samplers that draw fresh noise at each step (LCM), which keeps that property.
    """
    shape = (
        1,
        info.unet_config["in_channels"],
        plan.height // info.vae_scale_factor,
        plan.width // info.vae_scale_factor,
    )
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in plan.seeds]
    noise = [torch.randn(shape, generator=generator, dtype=torch.float32) for generator in generators]
    return torch.cat(noise).to(device) * scheduler.init_noise_sigma, generators


def guided_noise(backend: Backend, model_input, t, embeddings, guidance_scale: float, uses_guidance: bool):
    """One guided model prediction on scaled input: a single UNet call on [uncond; cond]."""
    doubled = torch.cat([model_input, model_input]) if uses_guidance else model_input
    prediction = backend.predict_noise(doubled, t, embeddings)
    if not uses_guidance:
        return prediction
    uncond, cond = prediction.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def _batch_embeddings(lanes: list[Lane]) -> torch.Tensor:
    """[uncond of every lane; cond of every lane], the layout guided_noise splits in two."""
    conds = [lane.cond for lane in lanes]
    if lanes[0].uncond is None:
        return torch.cat(conds)
    return torch.cat([lane.uncond for lane in lanes if lane.uncond is not None] + conds)


def denoise(backend: Backend, lanes: list[Lane], on_step: ProgressCallback | None = None) -> None:
    """4. Walk the (shared) timesteps; one UNet call per step serves every active lane.

    Latents stay fp32 whatever the UNet's dtype. After each step every lane reports its
    progress, then `on_step` hears of the step (one call for the batch: its jobs' reports
    in one write), then each lane is asked whether it has stopped. An exception raised from
    a report stops the whole run."""
    plan = lanes[0].plan
    timesteps = lanes[0].scheduler.timesteps
    extra_of = (lambda lane: {"generator": lane.generators}) if needs_generators(plan.sampler) else (lambda lane: {})
    active: list[Lane] = []
    embeddings = None
    for index, t in enumerate(timesteps):
        running = [lane for lane in lanes if lane.active]
        if not running:
            return
        if running != active:  # built again only when a lane has left
            active, embeddings = running, _batch_embeddings(running)
        scaled = torch.cat([lane.scheduler.scale_model_input(lane.latents, t) for lane in active])
        noise = guided_noise(backend, scaled, t, embeddings, plan.guidance_scale, plan.uses_guidance)
        for lane, lane_noise in zip(active, noise.split([lane.rows for lane in active]), strict=True):
            lane.latents = lane.scheduler.step(lane_noise, t, lane.latents, return_dict=False, **extra_of(lane))[0]
            if lane.on_progress is not None:
                lane.on_progress(index + 1, len(timesteps))
        if on_step is not None:
            on_step(index + 1, len(timesteps))
        for lane in active:
            lane.active = not lane.stopped()


def decode_latents(backend: Backend, latents: torch.Tensor) -> list:
    """5. Decode to PIL (the backend undoes the latent scaling its decoder was trained with)."""
    pixels = (backend.decode(latents) / 2 + 0.5).clamp(0, 1)
    # as diffusers' VaeImageProcessor.numpy_to_pil, without importing diffusers for it
    values = (pixels.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
    return [Image.fromarray(value) for value in values]


def make_lane(loaded: LoadedPipeline, backend: Backend, plan: SamplingPlan, on_progress: ProgressCallback | None = None,
              stopped: Callable[[], bool] | None = None) -> Lane:
    """Steps 2 and 3 for one request: its scheduler, embeddings and starting noise."""
    scheduler = make_scheduler(loaded.info.scheduler_config, plan.sampler, plan.steps, loaded.device)
    cond, uncond = encode_prompt(loaded, backend, plan)
    latents, generators = prepare_latents(loaded.info, plan, scheduler, loaded.device)
    return Lane(plan, scheduler, cond, uncond, latents, generators, on_progress, stopped or (lambda: False))


def sample_lanes(loaded: LoadedPipeline, backend: Backend, lanes: list[Lane], decode: bool = True,
                 on_step: ProgressCallback | None = None) -> Timing:
    """Steps 4-5 for lanes made by make_lane (all of one batch_key); each active lane's
    pictures land in `lane.images`. Returns the batch's timing."""
    started = time.perf_counter()
    with torch.inference_mode():
        denoise(backend, lanes, on_step)
        denoised = time.perf_counter()
        finished = [lane for lane in lanes if lane.active]
        if decode and finished:
            images = decode_latents(backend, torch.cat([lane.latents for lane in finished]))
            for lane in finished:
                lane.images, images = images[: lane.rows], images[lane.rows:]
    done = time.perf_counter()
    return Timing(denoise_s=denoised - started, decode_s=done - denoised, total_s=done - started)


def _run_one(loaded: LoadedPipeline, plan: SamplingPlan, backend: Backend, on_progress=None,
             decode: bool = True) -> tuple[Lane, Timing]:
    started = time.perf_counter()
    with loaded.session():  # the shared base held, with this model's adapter active
        with torch.inference_mode():
            lane = make_lane(loaded, backend, plan, on_progress)
        encode_s = time.perf_counter() - started
        timing = sample_lanes(loaded, backend, [lane], decode)
    return lane, dataclasses.replace(timing, encode_s=encode_s, total_s=timing.total_s + encode_s)


def generate(
    loaded: LoadedPipeline, request: GenerationRequest, on_progress: ProgressCallback | None = None
) -> GenerationResult:
    """Run one request on a loaded pipeline; all n images go through as one batch."""
    plan = plan_request(loaded, request)
    backend = loaded.runner()
    lane, timing = _run_one(loaded, plan, backend, on_progress)
    return result_of(loaded, plan, lane.images, timing, backend.name, len(plan.seeds))


def sample_latents(loaded: LoadedPipeline, request: GenerationRequest) -> torch.Tensor:
    """The final latents of a request, undecoded (distillation data, benchmarks)."""
    return _run_one(loaded, plan_request(loaded, request), loaded.runner(), decode=False)[0].latents


def run_backend_once(info: ModelInfo, modules: TorchModules, profile: Profile, backend: Backend) -> None:
    """One batch-1 generation of the model's defaults on `backend` (the load-time A/B)."""
    from app.catalog.model_card import model_defaults

    loaded = LoadedPipeline(info, modules, ModelRef(info.path), profile, modules.device, model_defaults(info.path),
                            backend)
    _run_one(loaded, plan_request(loaded, GenerationRequest(prompt="warm up", seeds=[0], profile=profile.name)), backend)


def result_of(loaded, plan: SamplingPlan, images, timing: Timing, backend: str, batch_images: int) -> GenerationResult:
    return GenerationResult(
        images=images,
        seeds=plan.seeds,
        prompts=plan.prompts,
        negative_prompt=plan.negative_prompt,
        steps=plan.steps,
        guidance_scale=plan.guidance_scale,
        sampler=plan.sampler,
        width=plan.width,
        height=plan.height,
        model_name=loaded.display_name,
        profile=loaded.profile.name,
        timing=timing,
        backend=backend,
        batch_images=batch_images,
    )


def generate_images(
    model: ModelRef, request: GenerationRequest, on_progress: ProgressCallback | None = None
) -> GenerationResult:
    """Warm (or load) the pipeline for `model`, then generate one request (the worker runs
    several at once through batching.generate_batch)."""
    check_request(request)  # fail on bad input before spending seconds on a load
    started = time.perf_counter()
    loaded = get_pipeline(model, request.profile)
    load_s = time.perf_counter() - started
    result = generate(loaded, request, on_progress)
    timing = result.timing
    result.timing = Timing(load_s, timing.encode_s, timing.denoise_s, timing.decode_s, timing.total_s + load_s)
    return result


def warm_up(model: ModelRef, profile: str = "fast") -> GenerationResult:
    """Load and run one small generation at worker start, so the first job pays no load.

    With compile_unet on, this compiles for batch 1 only; each new batch size compiles again.
    """
    return generate_images(model, GenerationRequest(prompt="warm up", seeds=[0], steps=2, profile=profile))
