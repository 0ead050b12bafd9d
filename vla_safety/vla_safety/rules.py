"""Safety rules with no ROS dependency: joint bounds, per-tick step limits, limit checks.

The command gate, the safety monitor and the controller (defence in depth) all apply these
rules, and the tests exercise them without a ROS graph.  Every array is in the robot's joint
order (``SafetyLimits.joint_names``); a fault is returned as a sentence that names the joint,
the bad value and what was expected (a :class:`Fault`), or ``None`` when everything is fine.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_common import joint_commands
from vla_common.joint_commands import Fault, check_times  # noqa: F401 (part of the rules)
from vla_common.messages import JointStateError
from vla_common.messages import joint_state_arrays as parse_arrays

#: the course's joint position limit (|q|, rad) and joint speed limit (|dq/dt|, rad/s)
DEFAULT_POSITION_LIMIT = 3.5
DEFAULT_VELOCITY_LIMIT = 2.0


class SafetyConfigError(ValueError):
    """Inconsistent safety limits; the message quotes the bad values."""


def _per_joint(name: str, value: float | Sequence[float], n: int) -> np.ndarray:
    """A scalar (same for every joint) or one value per joint, as a float array of length n."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, float(arr[0]))
    if arr.size != n:
        raise SafetyConfigError(f'{name} has {arr.size} values for {n} joints; give one value '
                                'or one per joint')
    if not np.all(np.isfinite(arr)):
        raise SafetyConfigError(f'{name} must be finite, got {arr.tolist()}')
    return arr


@dataclass(frozen=True)
class SafetyLimits:
    """The limits of one robot, built from the robot YAML (``robot.yaml`` + ``safety.yaml``)."""

    joint_names: tuple[str, ...]  # the robot's joints, in action-vector order
    lower: np.ndarray  # (N,) command bounds: targets are clipped into [lower, upper]
    upper: np.ndarray  # (N,)
    max_velocity: np.ndarray  # (N,) fastest commanded joint speed (rad/s, gripper m/s)
    position_limit: np.ndarray  # (N,) |measured position| above this is a violation
    velocity_limit: np.ndarray  # (N,) |measured velocity| above this is a violation

    @classmethod
    def from_values(cls, joint_names: Sequence[str], lower: Sequence[float],
                    upper: Sequence[float], max_velocity: float | Sequence[float],
                    position_limit: float | Sequence[float] = DEFAULT_POSITION_LIMIT,
                    velocity_limit: float | Sequence[float] = DEFAULT_VELOCITY_LIMIT,
                    ) -> SafetyLimits:
        """Check and convert parameter values (scalars apply to every joint)."""
        names = tuple(str(n) for n in joint_names)
        if not names:
            raise SafetyConfigError('joint_names is empty; list the robot joints in action order')
        if len(set(names)) != len(names):
            raise SafetyConfigError(f'joint_names has repeated names: {list(names)}')
        n = len(names)
        low = _per_joint('joint_lower', lower, n)
        high = _per_joint('joint_upper', upper, n)
        bad = [names[i] for i in np.flatnonzero(low >= high)]
        if bad:
            raise SafetyConfigError(f'joint_lower must be below joint_upper for {bad} '
                                    f'(lower {low.tolist()}, upper {high.tolist()})')
        values = {'max_velocity': _per_joint('max_velocity', max_velocity, n),
                  'position_limit': _per_joint('position_limit', position_limit, n),
                  'velocity_limit': _per_joint('velocity_limit', velocity_limit, n)}
        for key, arr in values.items():
            if np.any(arr <= 0):
                raise SafetyConfigError(f'{key} must be > 0 for every joint, got {arr.tolist()}')
        return cls(joint_names=names, lower=low, upper=high, **values)

    @property
    def n(self) -> int:
        return len(self.joint_names)


# -- commands ---------------------------------------------------------------------------------
# the checks themselves are vla_common.joint_commands' (the simulator makes the same ones)
def check_command(names: Sequence[str], positions: Sequence[Sequence[float]],
                  limits: SafetyLimits) -> Fault | None:
    """Why a command (joint names + one row of positions per point) cannot be used, or None.

    Faults: no points, unknown, missing or repeated joints, a row whose length differs from the
    name list, NaN or inf (:func:`vla_common.joint_commands.check_command`).
    """
    return joint_commands.check_command(names, positions, limits.joint_names)


def to_robot_order(names: Sequence[str], rows: Sequence[Sequence[float]],
                   limits: SafetyLimits) -> np.ndarray:
    """(P, N) positions in the robot's joint order (call :func:`check_command` first)."""
    return joint_commands.to_robot_order(names, rows, limits.joint_names)


def clip_to_bounds(positions: np.ndarray, limits: SafetyLimits) -> tuple[np.ndarray, np.ndarray]:
    """Targets clipped into ``[lower, upper]`` and a mask of the joints that were outside."""
    positions = np.asarray(positions, dtype=np.float64)
    outside = (positions < limits.lower) | (positions > limits.upper)
    return np.clip(positions, limits.lower, limits.upper), outside


def limit_step(previous: np.ndarray, target: np.ndarray, dt: float,
               max_velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move from ``previous`` toward ``target`` by at most ``max_velocity * dt`` per joint.

    Returns the limited target and a mask of the joints that were limited.
    """
    if not np.isfinite(dt) or dt < 0:
        raise ValueError(f'dt must be finite and >= 0, got {dt}')
    previous = np.asarray(previous, dtype=np.float64)
    delta = np.asarray(target, dtype=np.float64) - previous
    bound = np.asarray(max_velocity, dtype=np.float64) * dt
    limited = np.abs(delta) > bound + 1e-12
    return previous + np.clip(delta, -bound, bound), limited


def limit_trajectory(reference: np.ndarray, times: np.ndarray, positions: np.ndarray,
                     max_velocity: np.ndarray, first_dt: float) -> tuple[np.ndarray, bool]:
    """Rate-limit every point of a trajectory that starts at ``reference``.

    Point 0 may move ``max_velocity * first_dt`` from ``reference`` (the command gate passes
    its ``time_from_start`` plus the unused motion budget of the time since its last forwarded
    target); point ``k`` may move ``max_velocity * (t_k - t_{k-1})`` from point ``k-1``.
    Returns the (P, N) limited points and whether any was limited.
    """
    out = np.empty_like(np.asarray(positions, dtype=np.float64))
    previous, any_limited = np.asarray(reference, dtype=np.float64), False
    for k, target in enumerate(positions):
        dt = float(first_dt) if k == 0 else float(times[k]) - float(times[k - 1])
        out[k], limited = limit_step(previous, target, dt, max_velocity)
        any_limited |= bool(limited.any())
        previous = out[k]
    return out, any_limited


def tightening_fault(name: str, current: Sequence[float], proposed: Sequence[float],
                     wider: str = 'larger') -> str | None:
    """Why a run-time change of a limit is refused (it widens it), or None.

    ``wider``: 'larger' when a larger value is less safe (velocity limits, timeouts),
    'smaller' when a smaller one is (a lower joint bound).  Limits may only be tightened
    while the node runs; restart it to widen them.
    """
    old = np.asarray(current, dtype=np.float64).reshape(-1)
    new = np.asarray(proposed, dtype=np.float64).reshape(-1)
    if new.size == 1 and old.size > 1:
        new = np.full(old.size, float(new[0]))
    if new.shape != old.shape:
        return f'{name} needs {old.size} value(s), got {new.size}'
    widened = new > old + 1e-12 if wider == 'larger' else new < old - 1e-12
    if np.any(widened):
        return (f'{name} can only be tightened at run time (restart the node to widen it): '
                f'{new.tolist()} widens {old.tolist()}')
    return None


def sample_trajectory(start: np.ndarray, times: np.ndarray, positions: np.ndarray,
                      elapsed: float) -> np.ndarray:
    """Where a trajectory that left ``start`` ``elapsed`` s ago commands the robot to be now.

    Linear interpolation between points, holding the last one, as ros2_control's
    joint_trajectory_controller (and the simulator) follow position trajectories.
    """
    t = np.concatenate([[0.0], np.asarray(times, dtype=np.float64)])
    points = np.vstack([np.asarray(start, dtype=np.float64)[None], positions])
    if elapsed >= t[-1]:
        return points[-1].copy()
    if elapsed <= 0:
        return points[0].copy()
    i = int(np.searchsorted(t, elapsed, side='right'))
    alpha = (elapsed - t[i - 1]) / (t[i] - t[i - 1]) if t[i] > t[i - 1] else 1.0
    return points[i - 1] + alpha * (points[i] - points[i - 1])


# -- measured joint states ----------------------------------------------------------------------
def joint_state_arrays(names: Sequence[str], positions: Sequence[float],
                       velocities: Sequence[float], limits: SafetyLimits,
                       ) -> tuple[np.ndarray, np.ndarray | None] | Fault:
    """Positions (N,) and velocities (N,) or None in robot order, or why the message is unusable.

    :func:`vla_common.messages.joint_state_arrays` with its errors as a :class:`Fault` (kind
    'joint state missing joints' or 'malformed joint state'): extra joints are ignored, an
    empty velocity list gives None, non-finite values are kept (the checks below judge them).
    """
    try:
        return parse_arrays(names, positions, velocities, limits.joint_names, require_finite=False)
    except JointStateError as exc:
        return Fault(exc.kind, str(exc))


def _first_violation(values: np.ndarray, limit: np.ndarray, names, what: str,
                     unit: str) -> Fault | None:
    """A non-finite value or the first ``|value| > limit`` of one measured quantity, or None."""
    bad = [names[j] for j in np.flatnonzero(~np.isfinite(values))]
    if bad:
        return Fault('non-finite joint state', f'non-finite joint {what} for {bad}')
    over = np.flatnonzero(np.abs(values) > limit)
    if over.size:
        j = int(over[0])
        return Fault(f'joint {what} limit', f'joint {what} limit: {names[j]} at {values[j]:+.3f}{unit}, '
                                            f'limit +/-{limit[j]:.3f}{unit}')
    return None


def check_joint_state(positions: np.ndarray, velocities: np.ndarray | None,
                      limits: SafetyLimits) -> Fault | None:
    """The first limit a measured state violates (non-finite, position, velocity), or None."""
    fault = _first_violation(np.asarray(positions, dtype=np.float64), limits.position_limit,
                             limits.joint_names, 'position', '')
    if fault is None and velocities is not None:
        fault = _first_violation(np.asarray(velocities, dtype=np.float64), limits.velocity_limit,
                                 limits.joint_names, 'velocity', '/s')
    return fault


class FaultLog:
    """Counts faults by kind and says when one is new, so each reason is logged once."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, fault: Fault | str) -> bool:
        """Count a fault (by its kind); True the first time this kind is seen."""
        kind = fault.kind if isinstance(fault, Fault) else str(fault)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return self.counts[kind] == 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def fill_velocities(measured: np.ndarray | None, estimate: np.ndarray | None,
                    q: np.ndarray) -> np.ndarray:
    """The measured velocities with what the driver left out (none at all, or NaN) taken from
    the ``estimate`` (:class:`VelocityEstimator`), or zero while there is none yet."""
    fallback = estimate if estimate is not None else np.zeros_like(q)
    return fallback if measured is None else np.where(np.isfinite(measured), measured, fallback)


class VelocityEstimator:
    """Joint velocities from successive positions and their times, for drivers that publish none.

    A finite difference of the last two finite states; a gap longer than ``max_gap`` (s) or a
    time that does not advance restarts it (no estimate until two close states are seen).
    """

    def __init__(self, max_gap: float = 0.5) -> None:
        self.max_gap = float(max_gap)
        self._last: tuple[float, np.ndarray] | None = None
        self.velocity: np.ndarray | None = None

    def update(self, t: float, q: np.ndarray) -> np.ndarray | None:
        """Add a state measured at ``t`` (s); return the current estimate (None: not yet)."""
        q = np.asarray(q, dtype=np.float64)
        if not np.all(np.isfinite(q)):
            return self.velocity
        if self._last is not None:
            dt = t - self._last[0]
            if dt <= 0.0:
                return self.velocity  # a repeated or reordered stamp: keep the last estimate
            self.velocity = (q - self._last[1]) / dt if dt <= self.max_gap else None
        self._last = (t, q.copy())
        return self.velocity

    def reset(self) -> None:
        self._last, self.velocity = None, None
