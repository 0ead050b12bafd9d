"""Validation and time interpolation of joint trajectories (ROS-free).

The simulated robot follows ``JointTrajectory`` position targets the way ros2_control's
joint_trajectory_controller does: from the position held when the trajectory arrived,
linearly to each point at its ``time_from_start``, then holding the last point.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_common.joint_commands import check_command, check_times, to_robot_order


class TrajectoryError(ValueError):
    """A trajectory that cannot be followed; the message names the fault."""


@dataclass(frozen=True)
class Trajectory:
    times: np.ndarray  # (P,) seconds from start, strictly increasing
    positions: np.ndarray  # (P, N) targets in the robot's joint order
    start_positions: np.ndarray  # (N,) what the robot held when the trajectory arrived
    start_time: float  # clock time (s) at which time_from_start counts from
    clipped: bool  # some targets were clipped to the bounds

    def sample(self, now: float) -> np.ndarray:
        """Target positions at clock time ``now``."""
        t = now - self.start_time
        if t >= self.times[-1]:
            return self.positions[-1].copy()
        times = np.concatenate([[0.0], self.times])
        points = np.vstack([self.start_positions, self.positions])
        i = int(np.searchsorted(times, t, side='right'))
        if i == 0:
            return points[0].copy()
        t0, t1 = times[i - 1], times[i]
        alpha = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        return points[i - 1] + alpha * (points[i] - points[i - 1])


def validate_trajectory(joint_names: Sequence[str], point_positions: Sequence[Sequence[float]],
                        point_times: Sequence[float], robot_joints: Sequence[str],
                        lower: np.ndarray, upper: np.ndarray, clip: bool,
                        start_positions: np.ndarray, start_time: float) -> Trajectory:
    """Check a trajectory message's content and reorder it to the robot's joint order.

    Raises :class:`TrajectoryError` for unknown, missing or repeated joints, a point whose
    length differs from the joint list, non-finite values, non-increasing times (the command
    gate's checks, :mod:`vla_common.joint_commands`), or (with ``clip=False``) targets outside
    ``[lower, upper]``.
    """
    fault = check_command(joint_names, point_positions, robot_joints) or check_times(point_times)
    if fault is not None:
        raise TrajectoryError(fault.reason)
    positions = to_robot_order(joint_names, point_positions, robot_joints)
    times = np.asarray(point_times, dtype=np.float64)
    outside = (positions < lower) | (positions > upper)
    if np.any(outside):
        joints = sorted({robot_joints[j] for j in np.flatnonzero(outside.any(axis=0))})
        if not clip:
            raise TrajectoryError(f'target(s) outside the joint bounds for {joints} '
                                  f'(bounds {lower.tolist()} .. {upper.tolist()})')
        positions = np.clip(positions, lower, upper)
    return Trajectory(times=times, positions=positions,
                      start_positions=np.asarray(start_positions, dtype=np.float64).copy(),
                      start_time=float(start_time), clipped=bool(np.any(outside)))
