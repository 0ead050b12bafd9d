"""Mean/std normalization of states and actions that travels inside the model's state dict."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def guarded_std(std: np.ndarray | torch.Tensor, eps: float):
    """``std`` with near-constant dimensions (std < eps) replaced by 1: those are only centred."""
    if isinstance(std, torch.Tensor):
        return torch.where(std < eps, torch.ones_like(std), std)
    std = np.asarray(std, dtype=np.float64)
    return np.where(std < eps, 1.0, std)


class Normalizer(nn.Module):
    """Per-dimension ``(x - mean) / std`` for one named quantity (e.g. ``action``).

    The statistics are buffers, so they are saved and loaded with the model's weights.
    ``std`` is stored already guarded (see :func:`guarded_std`).
    """

    def __init__(self, dim: int, eps: float = 1e-3) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f'Normalizer needs a positive dimension, got {dim}')
        self.eps = float(eps)
        self.register_buffer('mean', torch.zeros(dim))
        self.register_buffer('std', torch.ones(dim))
        self.register_buffer('fitted', torch.zeros((), dtype=torch.bool))

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def set_stats(self, mean, std) -> None:
        """Install dataset statistics (robot units); std is guarded against constant dims."""
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std = torch.as_tensor(np.asarray(std, dtype=np.float32))
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ValueError(f'normalization stats must have shape ({self.dim},), '
                             f'got mean {tuple(mean.shape)} and std {tuple(std.shape)}')
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()) or (std < 0).any():
            raise ValueError(f'normalization stats must be finite with std >= 0, got mean={mean.tolist()} '
                             f'std={std.tolist()}')
        self.mean.copy_(mean)
        self.std.copy_(guarded_std(std, self.eps))
        self.fitted.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean
