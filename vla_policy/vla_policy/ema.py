"""The exponential moving average of a model's weights (the weights a run saves when --ema is on)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Exponential moving average of a model's trainable parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f'EMA decay must be in (0, 1), got {decay}')
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm start, as in diffusion_policy
        ema_params = dict(self.model.named_parameters())
        src, dst = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                src.append(p.detach())
                dst.append(ema_params[name])
        torch._foreach_lerp_(dst, src, 1.0 - decay)
        ema_buffers = dict(self.model.named_buffers())
        for name, b in model.named_buffers():
            ema_buffers[name].copy_(b)
