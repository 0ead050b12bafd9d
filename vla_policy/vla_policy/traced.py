"""Traced inference: the per-frame encoder and the chunk decoder of a :class:`VLAPolicy` as
frozen TorchScript graphs, for deployment.

A ``cpu``-preset model is small (about 40 MFLOP per prediction with two cameras); eager
PyTorch spends most of a prediction dispatching a few hundred small operators from Python.
Tracing the two halves once (one frame of ``B=1``, the policy's history length) and freezing
them (weights folded in as constants, operators fused) runs the same arithmetic with far less
overhead: on a 2-core AVX2 CPU about half the time per prediction (``benchmarks/
bench_controller.py`` prints both, called in turn), with outputs equal to eager within float rounding
(checked when traced).  TorchScript rather than ``torch.compile``: it needs no C++ compiler on
the robot's computer and traces in about a second.

The traced graphs are snapshots of the weights: :class:`VLAPolicy` drops them when it goes
back to training mode, moves to another device or loads other weights.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

TOLERANCE = 1e-4  # largest |eager - traced| accepted on the example inputs (normalized actions)


class _Encode(nn.Module):
    def __init__(self, policy: Any, cameras: tuple[str, ...]) -> None:
        super().__init__()
        self.policy, self.cameras = policy, cameras

    def forward(self, images: torch.Tensor, state: torch.Tensor, language: torch.Tensor,
                *extra: torch.Tensor) -> torch.Tensor:
        return self.policy.encode_frames(images, state, language, dict(zip(self.cameras, extra)))


class _Decode(nn.Module):
    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, frames: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return self.policy.decode(frames, language)


class TracedInference:
    """``encode(images, state, language, extra)`` and ``decode(frames, language)`` with the
    signatures of :meth:`VLAPolicy.encode_frames` / :meth:`VLAPolicy.decode` for one sample."""

    def __init__(self, policy: Any) -> None:
        cfg = policy.config
        self.cameras = tuple(cfg.extra_cameras)
        device = policy.device
        size = cfg.image_size
        frame = lambda: torch.randint(0, 256, (1, 1, size, size, 3), dtype=torch.uint8, device=device)  # noqa: E731
        images, extra = frame(), [frame() for _ in self.cameras]
        state = torch.zeros(1, 1, cfg.state_dim, device=device)
        with torch.no_grad():
            language = policy.embed_language(['pick up the cube']).detach()
            cells = (policy.frame_tokens,) if policy.spatial_cells else ()
            frames = torch.randn(1, cfg.n_obs_steps, *cells, cfg.d_model, device=device)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', torch.jit.TracerWarning)  # shapes fixed on purpose (B=1)
                # TorchScript is deprecated in favour of torch.compile, which needs a C++ compiler
                # at run time and compiles for tens of seconds; the pinned torch has TorchScript
                warnings.simplefilter('ignore', DeprecationWarning)
                self._encode = torch.jit.freeze(torch.jit.trace(
                    _Encode(policy, self.cameras).eval(), (images, state, language, *extra), check_trace=False))
                self._decode = torch.jit.freeze(torch.jit.trace(
                    _Decode(policy).eval(), (frames, language), check_trace=False))
            # the same numbers as eager, or no tracing at all
            token = policy.encode_frames(images, state, language, dict(zip(self.cameras, extra)))
            for _ in range(2):  # the first runs of a frozen graph are its profiling runs
                traced_token = self._encode(images, state, language, *extra)
                traced_chunk = self._decode(frames, language)
            error = max(float((token - traced_token).abs().max()),
                        float((policy.decode(frames, language) - traced_chunk).abs().max()))
        if not error <= TOLERANCE:
            raise RuntimeError(f'the traced model differs from eager by {error:.3g} (> {TOLERANCE:g})')

    def encode(self, images: torch.Tensor, state: torch.Tensor, language: torch.Tensor,
               extra: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._encode(images, state, language, *(extra[c] for c in self.cameras))

    def decode(self, frames: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return self._decode(frames, language)
