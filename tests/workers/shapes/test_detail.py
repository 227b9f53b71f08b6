"""Detailed pictures for the autoencoder, and the detail stage that learns them."""
import random

import numpy as np
import torch

from workers.shapes.detail import detailed_pair, draw_detailed, draw_detailed_batch
from workers.shapes.reader import palette_labels


def test_a_detailed_shape_carries_marks_in_other_colours():
    with_marks = 0
    for seed in range(20):
        labels = palette_labels(np.asarray(draw_detailed(random.Random(seed))))
        background = np.bincount(labels.ravel()).argmax()
        colours = np.bincount(labels[labels != background], minlength=8)
        with_marks += (colours >= 3).sum() >= 2  # the shape's colour and at least one mark
    assert with_marks >= 16


def test_a_pair_is_the_same_shape_on_two_backgrounds_with_its_inside_cells():
    for seed in range(10):
        here, there, inside = detailed_pair(random.Random(seed))
        a, b = np.asarray(here).astype(int), np.asarray(there).astype(int)
        assert inside.shape == (16, 16) and inside.any()
        assert not np.array_equal(a[0, 0], b[0, 0])  # another background
        cells = np.kron(inside, np.ones((4, 4), dtype=bool))
        same = np.abs(a - b).max(-1) == 0
        # inside cells are at least half shape pixels, the same in both pictures; the rest differ
        assert same[cells].mean() > 0.5 > same[~cells].mean()


def test_batches_are_reproducible():
    assert torch.equal(draw_detailed_batch(4, 3), draw_detailed_batch(4, 3))
    assert draw_detailed_batch(4, 3).shape == (4, 3, 64, 64)


def test_the_detail_step_trains_the_encoder_and_holds_flat_latents():
    from workers.shapes.architecture import build_vae
    from workers.shapes.recipe import Recipe
    from workers.shapes.vae_module import DetailTraining

    recipe = Recipe.from_dict({"arch": {"vae": {"block_out_channels": [8, 16, 16], "norm_num_groups": 8}}})
    vae = build_vae(recipe.arch)
    module = DetailTraining(vae, lr=1e-3, total_steps=10, edge_weight=20.0, anchor_weight=10.0)
    module.log_dict = lambda *a, **k: None
    flat = torch.rand(2, 3, 64, 64) * 2 - 1
    pairs = [detailed_pair(random.Random(s)) for s in range(2)]
    to = lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 127.5 - 1  # noqa: E731
    batch = (flat, torch.zeros(2, 4, 16, 16), torch.stack([to(p[0]) for p in pairs]),
             torch.stack([to(p[1]) for p in pairs]), torch.stack([torch.from_numpy(p[2])[None] for p in pairs]))
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert vae.encoder.conv_in.weight.grad.abs().sum() > 0
    assert vae.decoder.conv_out.weight.grad.abs().sum() > 0
