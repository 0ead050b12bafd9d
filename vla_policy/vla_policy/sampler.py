"""The order of training batches: one seeded permutation per epoch, sharded over DDP ranks."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


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
