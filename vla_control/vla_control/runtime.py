"""The controller's ROS-free parts: when to hold, the last line of command checks, timing.

``controller_node`` is a thin adapter around these; tests and benchmarks use them directly.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_safety.rules import SafetyLimits, clip_to_bounds, limit_step


@dataclass(frozen=True)
class Inputs:
    """What the controller knows at a tick (times in seconds on the node clock)."""

    now: float
    instruction: str  # '' = no command
    command_time: float | None  # when the current command arrived
    image_time: float | None  # arrival of the newest usable image
    state_time: float | None  # arrival of the newest usable joint state
    estop: str  # latched e-stop reason, '' = none


def hold_reason(inputs: Inputs, max_age: float, settle_time: float) -> str | None:
    """Why the controller must hold the robot this tick, or None when it may act.

    Holds with no command, during an emergency stop, without a recent image or joint state
    (older than ``max_age``) and for ``settle_time`` after the command changed.
    """
    if inputs.estop:
        return f'emergency stop: {inputs.estop}'
    if not inputs.instruction:
        return 'no command yet (publish one on /voice_command)'
    if inputs.image_time is None:
        return 'no camera image yet'
    if inputs.state_time is None:
        return 'no joint state yet'
    age = inputs.now - inputs.image_time
    if age > max_age:
        return f'camera image is stale ({age:.2f} s old, limit {max_age:g} s)'
    age = inputs.now - inputs.state_time
    if age > max_age:
        return f'joint state is stale ({age:.2f} s old, limit {max_age:g} s)'
    if inputs.command_time is not None and inputs.now - inputs.command_time < settle_time:
        return f'new command: settling for {settle_time:g} s'
    return None


class ActionGuard:
    """Defence in depth before publishing: finite, inside the bounds, within one tick's motion.

    The command gate applies the same rules; the controller applies them too, so a policy that
    misbehaves is caught even where the gate is configured differently.
    """

    def __init__(self, limits: SafetyLimits, period: float) -> None:
        self.limits, self.period = limits, float(period)
        self.previous: np.ndarray | None = None  # last commanded target

    def reset(self) -> None:
        self.previous = None

    def __call__(self, action: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray | None, str]:
        """(target, '') or (None, why the action was refused)."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (self.limits.n,):
            return None, (f'model output has {action.size} values, the robot has '
                          f'{self.limits.n} joints {list(self.limits.joint_names)}')
        if not np.all(np.isfinite(action)):
            bad = [self.limits.joint_names[j] for j in np.flatnonzero(~np.isfinite(action))]
            return None, f'model output is not finite for {bad}: {action.tolist()}'
        target, _ = clip_to_bounds(action, self.limits)
        start = measured if self.previous is None else self.previous
        target, _ = limit_step(start, target, self.period, self.limits.max_velocity)
        self.previous = target
        return target, ''


class RateMeter:
    """Latency percentiles and the achieved tick rate over a sliding window."""

    def __init__(self, window: int = 300) -> None:
        self.latencies: deque[float] = deque(maxlen=window)  # seconds
        self.ticks: deque[float] = deque(maxlen=window)  # tick start times (s)
        self.pending: list[float] = []  # latencies since the last report (ms)

    def add(self, start: float, latency: float) -> None:
        self.latencies.append(latency)
        self.ticks.append(start)
        self.pending.append(latency * 1e3)

    def percentiles_ms(self) -> tuple[float, float]:
        if not self.latencies:
            return float('nan'), float('nan')
        values = np.asarray(self.latencies) * 1e3
        return float(np.percentile(values, 50)), float(np.percentile(values, 99))

    def rate_hz(self) -> float:
        if len(self.ticks) < 2 or self.ticks[-1] <= self.ticks[0]:
            return 0.0
        return (len(self.ticks) - 1) / (self.ticks[-1] - self.ticks[0])

    def take_pending(self) -> list[float]:
        out, self.pending = self.pending, []
        return out


def check_image_size(expected: Sequence[int], height: int, width: int) -> str | None:
    """Why a camera image of ``height`` x ``width`` does not fit a checkpoint trained on
    ``expected`` ([H, W], empty when unknown), or None."""
    if len(expected) != 2:
        return None
    if (int(expected[0]), int(expected[1])) != (height, width):
        return (f'camera images are {height}x{width} but the checkpoint was trained on '
                f'{int(expected[0])}x{int(expected[1])} images')
    return None
