"""The sampling loop: reproducible seeds, batch independence, batched CFG, progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.engine import GenerationRequest, generate
from workers.engine.backends import TorchBackend
from workers.engine.embeddings import prompt_embeddings
from workers.engine.sampling import guided_noise, plan_request
from workers.engine.schedulers import make_scheduler


def as_array(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def request(**changes) -> GenerationRequest:
    values = dict(prompt="a red circle on the left", profile="quality", steps=4, seeds=[7])
    values.update(changes)
    return GenerationRequest(**values)


def test_same_seed_reproduces_the_same_image_exactly(loaded):
    first = generate(loaded, request(seeds=[123]))
    second = generate(loaded, request(seeds=[123]))
    other = generate(loaded, request(seeds=[124]))
    assert np.array_equal(as_array(first.images[0]), as_array(second.images[0]))
    assert not np.array_equal(as_array(first.images[0]), as_array(other.images[0]))


def test_image_k_of_a_batch_equals_its_seed_alone(loaded):
    seeds = [11, 22, 33]
    batch = generate(loaded, request(n=3, seeds=seeds))
    assert batch.seeds == seeds
    for k, seed in enumerate(seeds):
        alone = generate(loaded, request(seeds=[seed]))
        # Batched matmuls may round differently from single ones: allow 2/255.
        assert np.abs(as_array(batch.images[k]) - as_array(alone.images[0])).max() <= 2


def test_random_seeds_are_drawn_and_returned(loaded):
    result = generate(loaded, request(n=2, seeds=None))
    assert len(result.seeds) == 2 and all(isinstance(seed, int) for seed in result.seeds)
    again = generate(loaded, request(n=1, seeds=[result.seeds[1]]))
    assert np.abs(as_array(again.images[0]) - as_array(result.images[1])).max() <= 2


def test_batched_cfg_equals_two_separate_forwards(loaded):
    pipe = loaded.pipe
    scheduler = make_scheduler(pipe.scheduler.config, "DPM++ 2M")
    scheduler.set_timesteps(4)
    t = scheduler.timesteps[1]
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((2, 4, 16, 16), generator=generator)
    uncond = torch.randn((2, 16, 32), generator=generator)
    cond = torch.randn((2, 16, 32), generator=generator)
    with torch.inference_mode():
        batched = guided_noise(TorchBackend(pipe, loaded.profile, loaded.device), scheduler.scale_model_input(latents, t), t,
                               torch.cat([uncond, cond]), 6.0, True)
        model_input = scheduler.scale_model_input(latents, t)
        noise_uncond = pipe.unet(model_input, t, encoder_hidden_states=uncond).sample
        noise_cond = pipe.unet(model_input, t, encoder_hidden_states=cond).sample
    separate = noise_uncond + 6.0 * (noise_cond - noise_uncond)
    torch.testing.assert_close(batched, separate, rtol=1e-4, atol=1e-5)


def _unet_batch_sizes(pipe, run) -> list[int]:
    sizes: list[int] = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        run()
    finally:
        handle.remove()
    return sizes


def test_cfg_is_one_unet_call_per_step_and_skipped_at_scale_one(loaded):
    guided = _unet_batch_sizes(loaded.pipe, lambda: generate(loaded, request(n=3, seeds=[1, 2, 3])))
    assert guided == [6] * 4  # [uncond; cond] for 3 images, one call per step
    unguided = _unet_batch_sizes(
        loaded.pipe, lambda: generate(loaded, request(n=3, seeds=[1, 2, 3], guidance_scale=1.0))
    )
    assert unguided == [3] * 4


def test_progress_callback_is_called_once_per_step(loaded):
    calls: list[tuple[int, int]] = []
    generate(loaded, request(steps=5), on_progress=lambda step, total: calls.append((step, total)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_defaults_come_from_the_profile_and_the_model(loaded, loaded_fast):
    plan = plan_request(loaded, GenerationRequest(prompt="a red circle", profile="quality"))
    # UNet sample size 16 x VAE scale factor 2 = 32 pixels.
    assert (plan.width, plan.height) == (32, 32)
    assert (plan.steps, plan.sampler) == (loaded.profile.steps, loaded.profile.sampler)
    fast = generate(loaded_fast, GenerationRequest(prompt="a red circle", seeds=[5]))
    assert fast.images[0].size == (32, 32)
    # Fast takes its steps and guidance from the model; without a card, 8 and 7.5.
    assert (fast.steps, fast.guidance_scale, fast.sampler, fast.profile) == (8, 7.5, "UniPC", "fast")
    assert fast.model_name == "tiny-sd"
    assert fast.timing.denoise_s > 0 and fast.timing.total_s >= fast.timing.denoise_s


def test_explicit_size_changes_the_latent_size(loaded):
    result = generate(loaded, request(width=48, height=32))
    assert result.images[0].size == (48, 32)
    assert (result.width, result.height) == (48, 32)


def test_request_for_another_profile_is_refused(loaded):
    with pytest.raises(ValueError, match=r"^profile:"):
        generate(loaded, request(profile="fast"))


def test_matches_stock_diffusers_pipeline_with_the_same_scheduler(loaded):
    """Our loop is the stock pipeline's maths: same scheduler and seeds, same pixels."""
    from diffusers import StableDiffusionPipeline

    pipe = loaded.pipe
    stock = StableDiffusionPipeline(**{**pipe.components, "scheduler": make_scheduler(pipe.scheduler.config, "DPM++ 2M")})
    stock.set_progress_bar_config(disable=True)
    seeds = [3, 4]
    expected = stock(
        "a blue square", negative_prompt="red", num_inference_steps=4, guidance_scale=5.0,
        num_images_per_prompt=2, generator=[torch.Generator().manual_seed(s) for s in seeds],
    ).images
    ours = generate(loaded, request(prompt="a blue square", negative_prompt="red", steps=4,
                                    guidance_scale=5.0, n=2, seeds=seeds, sampler="DPM++ 2M")).images
    for mine, theirs in zip(ours, expected):
        assert np.abs(as_array(mine) - as_array(theirs)).max() <= 1


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "DPM++ 2M Karras", "UniPC", "Euler", "DDIM", "PLMS"])
def test_every_listed_sampler_runs(loaded, sampler):
    result = generate(loaded, request(sampler=sampler, steps=3))
    assert result.sampler == sampler and len(result.images) == 1


def test_model_card_sets_default_steps_guidance_and_name(tmp_path, engine_cache):
    import json

    from workers.engine import ModelRef
    from workers.engine.tiny_model import write_tiny_pipeline

    folder = write_tiny_pipeline(tmp_path / "carded")
    card = {"name": "shapes-v1", "steps": 6, "guidance_scale": 3.0}
    (folder / "imagebooth_model.json").write_text(json.dumps(card))
    fast = engine_cache.get(ModelRef(base=folder), "fast")
    result = generate(fast, GenerationRequest(prompt="a red circle", seeds=[1]))
    assert (result.steps, result.guidance_scale, result.model_name) == (6, 3.0, "shapes-v1")
    quality = engine_cache.get(ModelRef(base=folder), "quality")
    result = generate(quality, GenerationRequest(prompt="a red circle", seeds=[1], profile="quality"))
    assert (result.steps, result.guidance_scale) == (25, 3.0)


def test_raising_from_the_progress_callback_cancels_the_run(loaded):
    class Cancelled(Exception):
        pass

    def cancel_at_two(step, total):
        if step == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        generate(loaded, request(steps=5), on_progress=cancel_at_two)


def test_generate_images_and_warm_up_use_the_process_cache(tiny_ref):
    from workers.engine import generate_images, process_cache, warm_up

    warmed = warm_up(tiny_ref, "fast")
    assert warmed.steps == 2 and len(warmed.images) == 1
    result = generate_images(tiny_ref, GenerationRequest(prompt="a red circle", n=2, seeds=[1, 2]))
    assert result.seeds == [1, 2] and result.model_name == "tiny-sd"
    assert process_cache().get(tiny_ref, "fast").pipe is process_cache().get(tiny_ref, "fast").pipe


def test_a_prompt_list_draws_each_image_from_its_own_prompt(loaded):
    prompts = ["a red circle", "a blue square", "a red circle"]
    prompt_embeddings.clear()  # earlier tests' texts are remembered; count this request's passes
    encoded: list[int] = []
    handle = loaded.pipe.text_encoder.register_forward_pre_hook(lambda module, args: encoded.append(args[0].shape[0]))
    try:
        batch = generate(loaded, request(prompt="", prompts=prompts, n=3, seeds=[4, 5, 6]))
    finally:
        handle.remove()
    assert encoded == [1, 1, 1]  # each distinct prompt once, then the negative prompt
    assert batch.prompts == prompts
    for k, (text, seed) in enumerate(zip(prompts, [4, 5, 6], strict=True)):
        alone = generate(loaded, request(prompt=text, seeds=[seed]))
        assert np.abs(as_array(batch.images[k]) - as_array(alone.images[0])).max() <= 2
    # the prompt matters: the same seed under the other prompt is another picture
    swapped = generate(loaded, request(prompt="a blue square", seeds=[4]))
    assert np.abs(as_array(batch.images[0]) - as_array(swapped.images[0])).max() > 2
