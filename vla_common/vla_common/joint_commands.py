"""The checks every consumer of a joint command makes (ROS-free, numpy only).

A command is a list of joint names, one row of target positions per point and each point's
``time_from_start`` -- a ``JointTrajectory`` taken apart.  The command gate
(:mod:`vla_safety.gate`) and the simulator (:mod:`vla_sim.trajectory`) both refuse the same
commands with the same sentences; each turns the :class:`Fault` into its own error (the gate
counts it by ``kind``, the simulator raises ``TrajectoryError``)::

    fault = check_command(names, rows, robot_joints) or check_times(times)
    if fault is None:
        positions = to_robot_order(names, rows, robot_joints)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fault:
    """Why an input was refused: a short ``kind`` (for counting) and the full ``reason``."""

    kind: str  # e.g. 'unknown joint', 'non-finite target', 'joint position limit'
    reason: str  # names the joint, the bad value and what was expected

    def __str__(self) -> str:
        return self.reason


def check_command(names: Sequence[str], positions: Sequence[Sequence[float]],
                  joint_names: Sequence[str]) -> Fault | None:
    """Why a command (joint names + one row of positions per point) cannot be used by a robot
    with ``joint_names``, or None.

    Faults (``kind``): 'unknown joint', 'missing joint', 'repeated joint', 'no points',
    'wrong length' (a row whose length differs from the name list), 'non-finite target'.
    """
    names = list(names)
    robot = list(joint_names)
    unknown = [n for n in names if n not in robot]
    if unknown:
        return Fault('unknown joint', f'unknown joint(s) {unknown}; this robot has {robot}')
    missing = [n for n in robot if n not in names]
    if missing:
        return Fault('missing joint', f'missing joint(s) {missing}; a command must name all of '
                                        f'{robot}')
    if len(set(names)) != len(names):
        return Fault('repeated joint', f'repeated joint names in {names}')
    if len(positions) == 0:
        return Fault('no points', 'command has no points')
    for k, row in enumerate(positions):
        if len(row) != len(names):
            return Fault('wrong length', f'point {k} has {len(row)} positions for {len(names)} joints')
        values = np.asarray(row, dtype=np.float64)
        bad = [names[j] for j in np.flatnonzero(~np.isfinite(values))]
        if bad:
            return Fault('non-finite target',
                         f'point {k} has non-finite target(s) for {bad}: {values.tolist()}')
    return None


def check_times(times: Sequence[float]) -> Fault | None:
    """Why a list of ``time_from_start`` values (s) is unusable (kind 'bad time'), or None."""
    t = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        return Fault('bad time', f'time_from_start must be finite and >= 0, got {t.tolist()}')
    if np.any(np.diff(t) <= 0):
        return Fault('bad time',
                     f'time_from_start must increase from point to point, got {t.tolist()}')
    return None


def to_robot_order(names: Sequence[str], rows: Sequence[Sequence[float]],
                   joint_names: Sequence[str]) -> np.ndarray:
    """(P, N) float64 positions in ``joint_names`` order (call :func:`check_command` first)."""
    order = [list(names).index(n) for n in joint_names]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)[:, order]
