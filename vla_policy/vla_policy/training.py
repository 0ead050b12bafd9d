"""Small pure helpers of the training loop: schedule, batch order, EMA, metrics log, plot."""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def get_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Linear warmup to ``base_lr``, then cosine decay to ``min_ratio * base_lr`` at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


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

    FIELDS = ['step', 'epoch', 'lr', 'loss', 'l1', 'mse', 'grad_norm', 'val_loss', 'samples_per_s',
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
        tmp = path.with_name(f'.{path.name}.tmp.png')
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        tmp.replace(path)
