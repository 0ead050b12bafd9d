"""Small pure helpers of the training loop: schedule, batch order, EMA, metrics log, plot."""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vla_common.files import atomic_path


MAX_WARMUP_SHARE = 0.25  # the cosine decay starts at the latest a quarter into the schedule
MIN_WARMUP_STEPS = 10  # a time budget must fit this many warmup steps (or --warmup-steps if fewer)
MIN_BUDGET_STEPS = 10  # ... and at least this many steps in all


def get_lr(step: int, progress: float, base_lr: float, warmup_steps: int, decay_start: float,
           min_ratio: float = 0.01) -> float:
    """Learning rate of optimizer step ``step`` taken at schedule ``progress`` in [0, 1]
    (nanoGPT's get_lr, over progress instead of steps).

    ``base_lr * warmup * cosine``: a linear warmup over the first ``warmup_steps`` steps times a
    cosine from 1 at ``progress = decay_start`` to ``min_ratio`` at ``progress = 1``. Progress is
    ``step / total_steps`` for a step count or ``elapsed / budget`` for a time budget, so the
    schedule ends at ``min_ratio * base_lr`` whatever the number of steps the machine managed.
    """
    warm = 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
    span = max(1e-9, 1.0 - decay_start)
    done = min(1.0, max(0.0, (progress - decay_start) / span))
    return base_lr * warm * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * done)))


@dataclass
class Schedule:
    """Where a run stands and when it ends: after ``total_steps``, after ``budget_s`` seconds of
    wall time, or, given both, whichever comes first (progress is the larger of the two shares).

    The warmup is counted in steps; the cosine decay starts when it is over (``warmup_end``, the
    progress at step ``warmup_steps``) or at :data:`MAX_WARMUP_SHARE`, whichever is first, so a
    short or slow run still decays to ``min_ratio``.
    """

    base_lr: float
    warmup_steps: int
    min_ratio: float
    total_steps: int | None = None
    budget_s: float | None = None
    warmup_end: float | None = None  # progress at which the warmup steps were done

    def __post_init__(self) -> None:
        if self.total_steps is None and self.budget_s is None:
            raise ValueError('a schedule needs a step count, a time budget or both')
        if self.total_steps is not None and self.total_steps < 1:
            raise ValueError(f'total_steps must be >= 1, got {self.total_steps}')
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f'the time budget must be > 0 s, got {self.budget_s}')
        if self.total_steps is not None and self.warmup_end is None and self.budget_s is None:
            self.warmup_end = min(1.0, self.warmup_steps / self.total_steps)

    def progress(self, step: int, elapsed_s: float) -> float:
        shares = []
        if self.total_steps is not None:
            shares.append(step / self.total_steps)
        if self.budget_s is not None:
            shares.append(elapsed_s / self.budget_s)
        return min(1.0, max(shares))

    @property
    def decay_start(self) -> float:
        if self.warmup_end is None:
            return MAX_WARMUP_SHARE
        return min(MAX_WARMUP_SHARE, self.warmup_end)

    def lr(self, step: int, progress: float) -> float:
        """The learning rate of ``step`` at ``progress``; records the end of the warmup."""
        if self.warmup_end is None and step >= self.warmup_steps:
            self.warmup_end = progress
        return get_lr(step, progress, self.base_lr, self.warmup_steps, self.decay_start, self.min_ratio)

    @property
    def mode(self) -> str:
        if self.total_steps is not None and self.budget_s is not None:
            return 'steps or time, whichever ends first'
        return 'steps' if self.total_steps is not None else 'time'

    def minimum_budget_s(self, setup_s: float, step_s: float) -> float:
        """The shortest budget that fits the set-up and a useful warmup (at least
        ``min(warmup_steps, MIN_WARMUP_STEPS)`` steps in the first :data:`MAX_WARMUP_SHARE`)
        followed by a decay, given the measured time of one step."""
        warm = min(self.warmup_steps, MIN_WARMUP_STEPS)
        steps = max(warm / MAX_WARMUP_SHARE, MIN_BUDGET_STEPS)
        return setup_s + steps * step_s


class EpochBatchSampler:
    """Endless batches of sample indices: one seeded permutation per epoch, sharded over ranks.

    ``start_batch`` skips batches already consumed (resume) without loading them.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 start_batch: int = 0) -> None:
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f'need num_samples >= 1 and batch_size >= 1, got {num_samples}, {batch_size}')
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world = rank, world
        per_rank = num_samples // world if num_samples >= world else 1
        self.batches_per_epoch = max(1, per_rank // batch_size)
        self.start_batch = start_batch

    def epoch_of(self, batch: int) -> int:
        return batch // self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start_batch
        while True:
            epoch, within = divmod(batch, self.batches_per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            if self.num_samples >= self.world:
                order = order[: (self.num_samples // self.world) * self.world][self.rank::self.world]
            bs = min(self.batch_size, len(order))
            yield order[within * bs:(within + 1) * bs].tolist()
            batch += 1


class EMA:
    """Exponential moving average of a model's trainable parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy
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


class MetricsLog:
    """Append-only ``metrics.csv`` and ``metrics.jsonl`` (rows may carry different keys)."""

    FIELDS = ['step', 'epoch', 'progress', 'lr', 'loss', 'l1', 'mse', 'grad_norm', 'val_loss', 'samples_per_s',
              'elapsed_s', 'cpu_s']

    def __init__(self, directory: Path, truncate_after_step: int | None = None) -> None:
        self.csv_path = directory / 'metrics.csv'
        self.json_path = directory / 'metrics.jsonl'
        self.rows: list[dict[str, Any]] = []
        if self.json_path.exists():
            for line in self.json_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if truncate_after_step is None or row.get('step', 0) <= truncate_after_step:
                    self.rows.append(row)
        self._rewrite()

    def _rewrite(self) -> None:
        with self.json_path.open('w') as fj:
            for row in self.rows:
                fj.write(json.dumps(row) + '\n')
        with self.csv_path.open('w', newline='') as fc:
            writer = csv.DictWriter(fc, fieldnames=self.FIELDS, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with self.json_path.open('a') as fj:
            fj.write(json.dumps(row) + '\n')
        with self.csv_path.open('a', newline='') as fc:
            csv.DictWriter(fc, fieldnames=self.FIELDS, extrasaction='ignore').writerow(row)

    def plot(self, path: Path) -> None:
        """Training and validation loss against step, log scale."""
        import matplotlib
        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt
        train = [(r['step'], r['loss']) for r in self.rows if r.get('loss') is not None]
        val = [(r['step'], r['val_loss']) for r in self.rows if r.get('val_loss') is not None]
        fig, ax = plt.subplots(figsize=(7, 4))
        if train:
            ax.plot(*zip(*train), label='train loss', lw=1)
        if val:
            ax.plot(*zip(*val), 'o-', label='validation loss', lw=1.5, ms=3)
        ax.set_xlabel('step')
        ax.set_ylabel('loss (normalized actions)')
        ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
