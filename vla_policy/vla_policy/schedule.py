"""The learning-rate schedule and the length of a run (a step count, a time budget or both)."""
from __future__ import annotations

import math
from dataclasses import dataclass

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
