"""Acceleration-limited tracking of the policy's joint targets, one control tick at a time.

A policy's actions reach the robot as a stream of joint targets, one per tick.  Within a chunk
they are smooth, but where one chunk hands over to the next (asynchronous inference with a big
model whose chunks disagree), where a queue of actions restarts, or where a policy is noisy, the
commanded velocity can change by far more than an arm can follow in one tick.  The command gate
limits the speed of what it forwards, not its acceleration.  :class:`MotionSmoother` makes the
commanded path follow the targets within ``max_acceleration`` (and ``max_jerk`` when set) by
online trajectory generation with Ruckig (the library MoveIt Servo smooths with): every tick it
plans the time-optimal motion from the commanded state (position, velocity, acceleration) to
the new target, arriving with the target's own velocity (estimated from consecutive targets),
and commands where that motion is one tick later.  A target path that already respects the
limits is followed exactly; a jump is spread over as many ticks as the limits need.

No ROS here: :class:`vla_control.runtime.ActionGuard` uses it when the controller's
``max_acceleration`` parameter is set.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ruckig import InputParameter, OutputParameter, Result, Ruckig, Synchronization

__all__ = ['MotionSmoother', 'per_joint_limit']


def per_joint_limit(name: str, values: float | Sequence[float], n: int) -> np.ndarray | None:
    """``values`` as one limit per joint: one value for every joint or ``n`` values; None when
    every value is 0 (no limit).  ``ValueError`` says what was wrong."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 1:
        array = np.full(n, float(array[0]))
    if array.size != n or not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f'{name} needs one value >= 0 for every joint or one per joint ({n}), '
                         f'got {np.asarray(values).tolist()}; 0 = no limit')
    if not np.any(array > 0):
        return None
    if np.any(array == 0):
        raise ValueError(f'{name} is 0 for some joints and not for others ({array.tolist()}): '
                         'give a limit for every joint, or 0 for all (no limit)')
    return array


class MotionSmoother:
    """Joint targets in, acceleration-limited commanded positions out (see the module doc).

    ``max_velocity`` and ``max_acceleration`` per joint (> 0); ``max_jerk`` per joint or None
    (acceleration may change at once); ``period`` the control tick (s)."""

    def __init__(self, max_velocity: Sequence[float], max_acceleration: Sequence[float],
                 period: float, max_jerk: Sequence[float] | None = None) -> None:
        self.max_velocity = np.asarray(max_velocity, dtype=np.float64).reshape(-1)
        self.max_acceleration = np.asarray(max_acceleration, dtype=np.float64).reshape(-1)
        self.n = self.max_velocity.size
        if self.max_acceleration.size != self.n or not np.all(self.max_acceleration > 0):
            raise ValueError(f'max_acceleration needs {self.n} values > 0, got '
                             f'{self.max_acceleration.tolist()}')
        self.max_jerk = (np.full(self.n, np.inf) if max_jerk is None
                         else np.asarray(max_jerk, dtype=np.float64).reshape(-1))
        self.period = float(period)
        # one generator per joint, each asked to reach its target one tick from now (arriving
        # with the target's velocity) and, where the limits do not allow that, as soon as they
        # do: joints do not wait for each other (a jump of one joint slows no other)
        self._otg, self._input, self._output = [], [], []
        for j in range(self.n):
            inp = InputParameter(1)
            inp.synchronization = Synchronization.Time
            inp.minimum_duration = self.period
            inp.max_velocity = [float(self.max_velocity[j])]
            inp.max_acceleration = [float(self.max_acceleration[j])]
            inp.max_jerk = [float(self.max_jerk[j])]
            inp.target_acceleration = [0.0]
            self._otg.append(Ruckig(1, self.period))
            self._input.append(inp)
            self._output.append(OutputParameter(1))
        self.failures = 0  # updates Ruckig refused (the step fell back to the speed limit)
        self.reset()

    def reset(self) -> None:
        """Forget the commanded motion (a hold, a new command): the next :meth:`step` starts at
        rest from the position it is given."""
        self.state: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # p, v, a
        self.last_target: np.ndarray | None = None

    @property
    def velocity(self) -> np.ndarray | None:
        """The commanded velocity now (None before the first step)."""
        return None if self.state is None else self.state[1].copy()

    def step(self, start: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The position to command one tick from now, tracking ``target`` from the commanded
        state (from ``start`` at rest after a reset)."""
        self.state, self.last_target, position = self._advance(self.state, self.last_target,
                                                               start, target)
        return position

    def preview(self, start: np.ndarray, targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The positions :meth:`step` would command for ``targets`` in turn (one per tick),
        without changing the commanded state."""
        state, last, out = self.state, self.last_target, []
        for target in targets:
            state, last, position = self._advance(state, last, start, target)
            out.append(position)
        return out

    def correct(self, position: np.ndarray, previous: np.ndarray) -> None:
        """The command that was sent differs from :meth:`step`'s (clipped to the bounds, a
        tighter speed limit): continue from it, at the velocity it implies."""
        position = np.asarray(position, dtype=np.float64)
        if self.state is not None and not np.allclose(position, self.state[0], atol=1e-9):
            velocity = (position - np.asarray(previous, dtype=np.float64)) / self.period
            self.state = (position.copy(), velocity, np.zeros(self.n))

    def _advance(self, state, last_target, start, target):
        target = np.asarray(target, dtype=np.float64).reshape(-1)
        if state is None:
            state = (np.asarray(start, dtype=np.float64).reshape(-1).copy(), np.zeros(self.n),
                     np.zeros(self.n))
        p, v, a = state
        # the target's own velocity: the path it moves along, where a step is one the limits
        # allow (a jump between chunks is no velocity to arrive with)
        target_velocity = np.zeros(self.n)
        if last_target is not None:
            moved = (target - last_target) / self.period
            plausible = np.abs(moved) <= self.max_velocity
            target_velocity[plausible] = moved[plausible]
        new = (np.empty(self.n), np.empty(self.n), np.empty(self.n))
        accel = np.clip(a, -self.max_acceleration, self.max_acceleration)
        for j in range(self.n):
            inp, out = self._input[j], self._output[j]
            inp.current_position, inp.current_velocity = [float(p[j])], [float(v[j])]
            inp.current_acceleration = [float(accel[j])]
            inp.target_position = [float(target[j])]
            inp.target_velocity = [float(target_velocity[j])]
            result = self._otg[j].update(inp, out)
            if result in (Result.Working, Result.Finished):
                new[0][j], new[1][j], new[2][j] = (out.new_position[0], out.new_velocity[0],
                                                   out.new_acceleration[0])
            else:
                # Ruckig refused the input (it should not: every state it is given is its
                # own output): fall back to the speed limit from where the path is now
                self.failures += 1
                bound = self.max_velocity[j] * self.period
                step = float(np.clip(target[j] - p[j], -bound, bound))
                new[0][j], new[1][j], new[2][j] = p[j] + step, step / self.period, 0.0
        return new, target.copy(), new[0].copy()
