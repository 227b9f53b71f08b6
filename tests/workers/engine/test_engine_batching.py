"""Several requests in one UNet batch (the worker's batches of jobs): each gets the pictures
it gets alone, keeps its own progress, and leaves the batch when it stops."""

from __future__ import annotations

import numpy as np
import pytest

from workers.engine import GenerationRequest, generate
from workers.engine.batching import BatchMember, run_batch
from workers.engine.embeddings import EmbeddingCache, prompt_embeddings

# Three jobs that can share a batch: own prompts, negative prompts, seeds and sizes of n.
REQUESTS = [
    GenerationRequest(prompt="a red circle", n=1, seeds=[5], steps=4, profile="quality", guidance_scale=4.0),
    GenerationRequest(prompts=["a blue square", "a star"], n=2, seeds=[9, 1], negative_prompt="green", steps=4,
                      profile="quality", guidance_scale=4.0),
    GenerationRequest(prompt="a yellow triangle", n=3, seeds=[2, 3, 4], steps=4, profile="quality",
                      guidance_scale=4.0),
]


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(image) for image in result.images]


def unet_rows(pipe, run) -> list[int]:
    rows: list[int] = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    try:
        run()
    finally:
        handle.remove()
    return rows


def test_batched_requests_get_bitwise_the_pictures_they_get_alone_in_fp32(loaded):
    alone = [generate(loaded, request) for request in REQUESTS]
    results: list = []
    rows = unet_rows(loaded.pipe, lambda: results.extend(run_batch(loaded, [BatchMember(r) for r in REQUESTS])))
    assert rows == [2 * 6] * 4  # one guided UNet call per step serves all six pictures
    for together, by_itself in zip(results, alone, strict=True):
        assert together.seeds == by_itself.seeds and together.prompts == by_itself.prompts
        assert together.negative_prompt == by_itself.negative_prompt and together.batch_images == 6
        for mine, theirs in zip(pixels(together), pixels(by_itself), strict=True):
            assert np.array_equal(mine, theirs)


def test_the_batch_hears_of_every_step_before_its_members_are_asked_whether_they_stopped(loaded):
    heard: list[tuple] = []
    members = [BatchMember(REQUESTS[k], stopped=lambda k=k: heard.append(("stopped?", k)) and False) for k in (0, 1)]
    run_batch(loaded, members, on_step=lambda step, total: heard.append((step, total)))
    assert heard == [item for step in range(1, 5) for item in ((step, 4), ("stopped?", 0), ("stopped?", 1))]


def test_a_stopped_member_leaves_the_batch_and_the_others_are_undisturbed(loaded):
    steps_seen = []

    def stop_after_two() -> bool:
        steps_seen.append(1)
        return len(steps_seen) >= 2

    members = [BatchMember(REQUESTS[0]), BatchMember(REQUESTS[1], stopped=stop_after_two), BatchMember(REQUESTS[2])]
    results: list = []
    rows = unet_rows(loaded.pipe, lambda: results.extend(run_batch(loaded, members)))
    assert rows == [12, 12, 8, 8]  # its two pictures left after step 2
    assert results[1] is None
    for index in (0, 2):
        alone = generate(loaded, REQUESTS[index])
        for mine, theirs in zip(pixels(results[index]), pixels(alone), strict=True):
            assert np.array_equal(mine, theirs)


def test_requests_that_cannot_share_a_unet_call_are_refused(loaded):
    other_steps = GenerationRequest(prompt="a red circle", seeds=[1], steps=3, profile="quality", guidance_scale=4.0)
    with pytest.raises(ValueError, match=r"^batch:"):
        run_batch(loaded, [BatchMember(REQUESTS[0]), BatchMember(other_steps)])


def test_prompt_embeddings_are_encoded_once_per_model_and_text(loaded):
    prompt_embeddings.clear()
    encoded: list[int] = []
    handle = loaded.pipe.text_encoder.register_forward_pre_hook(lambda module, args: encoded.append(1))
    try:
        run_batch(loaded, [BatchMember(REQUESTS[0]), BatchMember(REQUESTS[0])])
        run_batch(loaded, [BatchMember(REQUESTS[0])])
    finally:
        handle.remove()
    assert len(encoded) == 2  # "a red circle" and the empty negative prompt, once each
    assert (prompt_embeddings.stats.misses, prompt_embeddings.stats.hits) == (2, 4)


def test_the_embedding_cache_forgets_the_least_recently_used_and_keys_by_model():
    class Encoder:  # a loaded text encoder (a backend)
        pass

    cache = EmbeddingCache(capacity=2)
    made: list[tuple[str, str]] = []

    def encoder(model: str):
        return lambda text: made.append((model, text)) or np.zeros(1)

    base = Encoder()
    cache.get(base, "", "a", encoder("base"))
    cache.get(base, "", "b", encoder("base"))
    cache.get(base, "", "a", encoder("base"))  # a is now the most recent
    cache.get(base, "", "c", encoder("base"))  # evicts b
    cache.get(base, "personal", "a", encoder("personal"))  # an adapter on that encoder: its own entry
    cache.get(base, "", "b", encoder("base"))
    cache.get(Encoder(), "", "b", encoder("reloaded"))  # another loaded encoder never sees base's entries
    assert made == [("base", "a"), ("base", "b"), ("base", "c"), ("personal", "a"), ("base", "b"), ("reloaded", "b")]
    assert len(cache) == 2 and cache.stats.hits == 1
