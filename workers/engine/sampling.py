"""The sampling loop: prompt to PIL images, as a fixed sequence of small named steps.

    1. check inputs         (inputs.check_request)
    2. encode prompt        each distinct prompt and the negative prompt once, one row per image
    3. prepare latents      one CPU torch.Generator per image, seeded with that image's seed
    4. denoise              classifier-free guidance as ONE batched UNet forward [uncond; cond]
    5. decode               VAE (or the fast profile's distilled decoder), to PIL

The networks run on the pipeline's backend (backends.py: PyTorch, or OpenVINO compiled for
this CPU); everything per request - seeds, scheduler, guidance, progress - stays here.

Why our own loop and not StableDiffusionPipeline.__call__: the stock call draws one batch of
noise from one generator (or needs a generator list we would build anyway), has no per-request
scheduler (it mutates the pipeline's own, which a warm shared pipeline cannot allow), and its
progress hooks are per-step callbacks with tensors we do not need. The steps below are the
same maths, so the stock pipeline with the same scheduler gives the same images.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from workers.engine.backends import Backend
from workers.engine.inputs import GenerationRequest, GenerationResult, Timing, check_request, resolve_seeds
from workers.engine.loading import LoadedPipeline, ModelRef, get_pipeline
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


def default_size(pipe) -> tuple[int, int]:
    """The model's native size: UNet sample size x VAE scale factor (width, height)."""
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return side, side


def plan_request(loaded: LoadedPipeline, request: GenerationRequest) -> SamplingPlan:
    """1. Check inputs and fill defaults from the profile and the model's card."""
    check_request(request)
    if request.profile != loaded.profile.name:
        raise ValueError(f"profile: request wants {request.profile!r}, pipeline is {loaded.profile.name!r}")
    width, height = default_size(loaded.pipe)
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


def _tokens(pipe, text: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Token ids (and mask) for the text encoder; SDXL's second tokenizer's ids as the third."""
    tokens = _token_ids(pipe.tokenizer, text)
    # SD 1.x text encoders were trained without an attention mask; follow the model's config.
    uses_mask = getattr(pipe.text_encoder.config, "use_attention_mask", False)
    second = getattr(pipe, "tokenizer_2", None)
    return (tokens.input_ids, tokens.attention_mask if uses_mask else None,
            _token_ids(second, text).input_ids if second is not None else None)


# backend -> {text: its hidden states}; weak, so an evicted personal model's entries go with it
_EMBEDDINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MAX_EMBEDDINGS = 64


def _embed(backend: Backend, pipe, text: str) -> torch.Tensor:
    """Hidden states of one text, remembered per backend: nearly every request has the same
    (empty) negative prompt, whose text-encoder pass was a twentieth of a compiled picture."""
    # a LoRA adapter that leaves the text encoder alone encodes on its base's backend (adapters.py)
    cache = _EMBEDDINGS.setdefault(getattr(backend, "text_backend", backend), {})
    if text not in cache:
        if len(cache) >= _MAX_EMBEDDINGS:
            cache.clear()
        cache[text] = backend.encode_text(*_tokens(pipe, text))
        if not text and pipe.config.get("force_zeros_for_empty_prompt", False):
            # SDXL was trained with zeros, not the empty prompt's encoding, as "no negative prompt"
            cache[text] = torch.zeros_like(cache[text])
    return cache[text]


def encode_prompt(backend: Backend, pipe, plan: SamplingPlan) -> torch.Tensor:
    """2. Text embeddings for the batch: [uncond x n; cond of each image], or the conds without CFG.

    A prompt shared by several images (all n of a plain request) goes through the text
    encoder once. fp32 and contiguous once here, so no step of the loop copies them again.
    """
    n = len(plan.seeds)
    distinct = list(dict.fromkeys(plan.prompts))
    cond = torch.cat([_embed(backend, pipe, text) for text in distinct])
    embeddings = cond[[distinct.index(text) for text in plan.prompts]]
    if plan.uses_guidance:
        uncond = _embed(backend, pipe, plan.negative_prompt).expand(n, -1, -1)
        embeddings = torch.cat([uncond, embeddings])
    return embeddings.float().contiguous()


def prepare_latents(pipe, plan: SamplingPlan, scheduler, device: torch.device):
    """3. Starting noise, image k drawn from its own generator seeded with seeds[k].

    Drawn on the CPU in fp32 and then moved, so a seed gives the same noise on every machine
    and in every profile; and because each image has its own generator, image k of a batch
    starts from exactly the noise its seed gives alone. The generators are returned for
    samplers that draw fresh noise at each step (LCM), which keeps that property.
    """
    shape = (
        1,
        pipe.unet.config.in_channels,
        plan.height // pipe.vae_scale_factor,
        plan.width // pipe.vae_scale_factor,
    )
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in plan.seeds]
    noise = [torch.randn(shape, generator=generator, dtype=torch.float32) for generator in generators]
    return torch.cat(noise).to(device) * scheduler.init_noise_sigma, generators


def predict_noise(backend: Backend, scheduler, latents, t, embeddings, guidance_scale: float, uses_guidance: bool):
    """One guided model prediction: a single UNet call on [uncond; cond] when guiding."""
    model_input = torch.cat([latents, latents]) if uses_guidance else latents
    prediction = backend.predict_noise(scheduler.scale_model_input(model_input, t), t, embeddings)
    if not uses_guidance:
        return prediction
    uncond, cond = prediction.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def denoise(backend: Backend, plan, scheduler, latents, embeddings, generators=None,
            on_progress: ProgressCallback | None = None):
    """4. Walk the scheduler's timesteps; latents stay fp32 whatever the UNet's dtype."""
    timesteps = scheduler.timesteps
    total = len(timesteps)
    step_extra = {"generator": generators} if needs_generators(plan.sampler) else {}
    for index, t in enumerate(timesteps):
        noise_pred = predict_noise(backend, scheduler, latents, t, embeddings, plan.guidance_scale, plan.uses_guidance)
        latents = scheduler.step(noise_pred, t, latents, return_dict=False, **step_extra)[0]
        if on_progress is not None:
            on_progress(index + 1, total)
    return latents


def decode_latents(backend: Backend, pipe, latents: torch.Tensor) -> list:
    """5. Decode to PIL (the backend undoes the latent scaling its decoder was trained with)."""
    pixels = (backend.decode(latents) / 2 + 0.5).clamp(0, 1)
    return pipe.image_processor.numpy_to_pil(pixels.permute(0, 2, 3, 1).cpu().numpy())


def _sample(loaded: LoadedPipeline, plan: SamplingPlan, backend: Backend, on_progress=None):
    """Steps 2-4 under inference mode; returns (final latents, seconds spent encoding)."""
    scheduler = make_scheduler(loaded.pipe.scheduler.config, plan.sampler, plan.steps, loaded.device)
    started = time.perf_counter()
    embeddings = encode_prompt(backend, loaded.pipe, plan)
    encoded = time.perf_counter()
    latents, generators = prepare_latents(loaded.pipe, plan, scheduler, loaded.device)
    latents = denoise(backend, plan, scheduler, latents, embeddings, generators, on_progress)
    return latents, encoded - started


def generate(
    loaded: LoadedPipeline, request: GenerationRequest, on_progress: ProgressCallback | None = None
) -> GenerationResult:
    """Run one request on a loaded pipeline; all n images go through as one batch."""
    started = time.perf_counter()
    plan = plan_request(loaded, request)
    backend = loaded.runner()
    with loaded.session(), torch.inference_mode():
        latents, encode_s = _sample(loaded, plan, backend, on_progress)
        denoised = time.perf_counter()
        images = decode_latents(backend, loaded.pipe, latents)
    finished = time.perf_counter()
    timing = Timing(encode_s=encode_s, denoise_s=denoised - started - encode_s, decode_s=finished - denoised,
                    total_s=finished - started)
    return _result(loaded, request, plan, images, timing, backend.name)


def sample_latents(loaded: LoadedPipeline, request: GenerationRequest) -> torch.Tensor:
    """The final latents of a request, undecoded (distillation data, benchmarks)."""
    with loaded.session(), torch.inference_mode():
        return _sample(loaded, plan_request(loaded, request), loaded.runner())[0]


def run_backend_once(pipe, profile: Profile, backend: Backend) -> None:
    """One batch-1 generation of the model's defaults on `backend` (the load-time A/B)."""
    from app.catalog.model_card import model_defaults

    defaults = model_defaults(pipe.name_or_path)
    loaded = LoadedPipeline(pipe, ModelRef(Path(pipe.name_or_path)), profile, pipe.device, defaults, backend)
    plan = plan_request(loaded, GenerationRequest(prompt="warm up", seeds=[0], profile=profile.name))
    with torch.inference_mode():
        decode_latents(backend, pipe, _sample(loaded, plan, backend)[0])


def _result(loaded, request, plan: SamplingPlan, images, timing: Timing, backend: str) -> GenerationResult:
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
    )


def generate_images(
    model: ModelRef, request: GenerationRequest, on_progress: ProgressCallback | None = None
) -> GenerationResult:
    """The worker's one call: warm (or load) the pipeline for `model`, then generate."""
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
