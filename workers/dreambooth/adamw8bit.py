"""AdamW whose two moments are kept in 8 bits, blockwise (the 8-bit optimizers of Dettmers et
al., 2022, with a log-spaced code of this project's own).

Why: a LoRA checkpoint holds the weights and Adam's two moments, so with fp32 moments it is 3x
the LoRA: 67.8 MB for SDXL's rank-4 UNet LoRA. With 8-bit moments it is about 1.5x, and the
optimizer's memory shrinks by as much. Each step starts from the moments as stored, so a
resumed run is bitwise the run that was not interrupted.

Each block of 256 values keeps its absolute maximum in fp32 and every value as a code: 0, or a
step on a geometric ladder below that maximum (sign + 7 bits for the first moment, 8 bits for
the square root of the second). A geometric ladder keeps the relative error the same (about
+-4% and +-2%) for small and large values alike; values under the ladder's floor (1e-4 and
1e-5 of the block's maximum) are stored as 0. The arithmetic of a step is AdamW's, in fp32.
"""
from __future__ import annotations

import math

import torch

BLOCK = 256
# (number of ladder steps, floor relative to the block's maximum)
FIRST_MOMENT_CODE = (127, 1e-4)
ROOT_SECOND_MOMENT_CODE = (255, 1e-5)


def _ratio(code: tuple[int, float]) -> float:
    steps, floor = code
    return math.log(floor) / (steps - 1)  # log of one step down the ladder (negative)


def quantize(values: torch.Tensor, code: tuple[int, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat fp32 tensor (its length a multiple of BLOCK) -> (codes, fp32 maxima per block). A
    code's sign is the value's, its size 1..steps the rung (steps: the maximum), 0 for zero; int8
    for the signed code, uint8 for the unsigned one (non-negative values only)."""
    steps, _ = code
    blocks = values.view(-1, BLOCK)
    maxima = blocks.abs().amax(dim=1)
    relative = blocks.abs() / maxima.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(1)
    rung = steps - torch.round(torch.log(relative.clamp_min(1e-30)) / _ratio(code))
    rung = torch.where(rung >= 1, rung, torch.zeros_like(rung))  # under the floor (or 0): 0
    dtype = torch.int8 if steps <= 127 else torch.uint8
    return (torch.sign(blocks) * rung).to(dtype).view(-1), maxima


def dequantize(codes: torch.Tensor, maxima: torch.Tensor, code: tuple[int, float]) -> torch.Tensor:
    steps, _ = code
    rung = codes.view(-1, BLOCK).abs().float()
    magnitude = torch.exp((steps - rung) * _ratio(code)) * maxima.unsqueeze(1)
    return (torch.sign(codes.view(-1, BLOCK).float()) * torch.where(rung > 0, magnitude, 0.0)).view(-1)


class AdamW8bit(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state[parameter]
                padded = math.ceil(parameter.numel() / BLOCK) * BLOCK
                if not state:
                    state["step"] = 0
                    zeros = torch.zeros(padded, device=parameter.device)
                    state["exp_avg"], state["exp_avg_max"] = quantize(zeros, FIRST_MOMENT_CODE)
                    state["exp_avg_root"], state["exp_avg_root_max"] = quantize(zeros, ROOT_SECOND_MOMENT_CODE)
                state["step"] += 1
                gradient = torch.zeros(padded, device=parameter.device)
                gradient[: parameter.numel()] = parameter.grad.reshape(-1).float()
                first = dequantize(state["exp_avg"], state["exp_avg_max"], FIRST_MOMENT_CODE)
                second = dequantize(state["exp_avg_root"], state["exp_avg_root_max"], ROOT_SECOND_MOMENT_CODE) ** 2
                first.mul_(beta1).add_(gradient, alpha=1 - beta1)
                second.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
                root = second.sqrt()
                state["exp_avg"], state["exp_avg_max"] = quantize(first, FIRST_MOMENT_CODE)
                state["exp_avg_root"], state["exp_avg_root_max"] = quantize(root, ROOT_SECOND_MOMENT_CODE)
                first, root = first[: parameter.numel()], root[: parameter.numel()]
                correction1 = 1 - beta1 ** state["step"]
                correction2 = 1 - beta2 ** state["step"]
                denominator = root / math.sqrt(correction2) + group["eps"]
                update = (first / correction1 / denominator).view_as(parameter)
                parameter.mul_(1 - group["lr"] * group["weight_decay"])
                parameter.add_(update.to(parameter.dtype), alpha=-group["lr"])
        return loss
