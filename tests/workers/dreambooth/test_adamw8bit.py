"""The 8-bit AdamW: its code's error, its state's size, that it trains like AdamW and resumes exactly."""
import copy

import pytest
import torch

from workers.dreambooth.adamw8bit import (
    BLOCK,
    FIRST_MOMENT_CODE,
    ROOT_SECOND_MOMENT_CODE,
    AdamW8bit,
    dequantize,
    quantize,
)


@pytest.mark.parametrize(("code", "signed", "tolerance"), [(FIRST_MOMENT_CODE, True, 0.04),
                                                          (ROOT_SECOND_MOMENT_CODE, False, 0.025)])
def test_the_code_keeps_small_and_large_values_to_a_few_percent(code, signed, tolerance):
    torch.manual_seed(0)
    values = torch.randn(BLOCK * 16) * torch.logspace(-3, 1, BLOCK * 16)  # five decades within blocks
    values = values if signed else values.abs()
    codes, maxima = quantize(values, code)
    assert codes.dtype == (torch.int8 if signed else torch.uint8) and maxima.shape == (16,)
    back = dequantize(codes, maxima, code)
    relative = (back - values).abs() / values.abs()
    above_floor = values.abs() > code[1] * maxima.repeat_interleave(BLOCK)
    assert relative[above_floor].max() < tolerance
    assert torch.equal(back.abs().view(-1, BLOCK).amax(dim=1), maxima)  # each block's maximum is exact
    assert (back[~above_floor].abs() <= code[1] * maxima.repeat_interleave(BLOCK)[~above_floor] * 1.05).all()
    zeros, zero_maxima = quantize(torch.zeros(BLOCK), code)
    assert torch.equal(dequantize(zeros, zero_maxima, code), torch.zeros(BLOCK))


def _fit(optimizer_class, steps=200, model=None, optimizer_state=None):
    model = model or torch.nn.Linear(32, 8)
    torch.manual_seed(0)
    inputs = torch.randn(256, model.in_features)
    targets = inputs @ torch.randn(model.in_features, model.out_features)
    optimizer = optimizer_class(model.parameters(), lr=1e-2, weight_decay=1e-2)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(inputs) - targets) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model, optimizer


def test_it_trains_like_adamw():
    torch.manual_seed(1)
    start = torch.nn.Linear(32, 8)
    full, _, _ = _fit(torch.optim.AdamW, model=copy.deepcopy(start))
    eight, _, _ = _fit(AdamW8bit, model=copy.deepcopy(start))
    assert eight[-1] < full[0] / 10  # it learns
    assert abs(eight[-1] - full[-1]) < 0.25 * full[-1]  # about as well as fp32 AdamW


def test_its_state_is_a_quarter_of_adamws_and_a_resume_is_exact(tmp_path):
    torch.manual_seed(1)
    start = torch.nn.Linear(300, 300)  # 90,300 weights: not a multiple of the block
    whole, whole_model, _ = _fit(AdamW8bit, steps=20, model=copy.deepcopy(start))
    first, model, optimizer = _fit(AdamW8bit, steps=10, model=copy.deepcopy(start))
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    model = copy.deepcopy(start)
    model.load_state_dict(saved["model"])
    second, resumed, _ = _fit(AdamW8bit, steps=10, model=model, optimizer_state=saved["optimizer"])
    assert first + second == whole  # bitwise: the same floats at every step
    assert all(torch.equal(a, b) for a, b in zip(whole_model.parameters(), resumed.parameters()))
    state_bytes = sum(value.numel() * value.element_size() for state in optimizer.state.values()
                      for value in state.values() if isinstance(value, torch.Tensor))
    weight_bytes = sum(p.numel() * p.element_size() for p in start.parameters())
    assert state_bytes < 0.55 * weight_bytes  # AdamW's two fp32 moments are 2x the weights
