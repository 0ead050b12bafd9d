"""What ros2_control's joint_trajectory_controller (JTC) accepts, as a pure function.

Mirrors the checks of ``JointTrajectoryController::validate_trajectory_msg`` (ros2_controllers,
Humble to Kilted) that matter for a position-only command, so the gate's output can be tested
against them without a controller:

* joint names: not empty, no repeats, every name one of the controller's joints, and all of
  them unless partial goals are allowed;
* ``header.stamp``: zero means "start on receipt"; otherwise the trajectory starts at the
  stamp and is rejected when it ends before the controller's clock
  (``stamp + last time_from_start < now``) -- latency or clock skew beyond its duration
  drops it;
* points: at least one, ``time_from_start`` strictly increasing from point to point, and as
  many positions as joint names.
"""
from __future__ import annotations

from collections.abc import Sequence


def jtc_rejection(joint_names: Sequence[str], controller_joints: Sequence[str],
                  stamp: float, times: Sequence[float], positions: Sequence[Sequence[float]],
                  now: float, allow_partial_joints_goal: bool = False) -> str | None:
    """Why a JTC would reject this trajectory (``stamp``, ``now`` in s of its clock), or None."""
    names = list(joint_names)
    if not names:
        return 'empty joint_names'
    if len(set(names)) != len(names):
        return f'repeated joint names in {names}'
    unknown = [n for n in names if n not in controller_joints]
    if unknown:
        return f'joint(s) {unknown} are not controlled by this controller ({list(controller_joints)})'
    if not allow_partial_joints_goal and len(names) != len(controller_joints):
        return (f'partial goal ({len(names)} of {len(controller_joints)} joints) while '
                'allow_partial_joints_goal is false')
    if len(times) == 0:
        return 'no points'
    if stamp != 0.0 and stamp + float(times[-1]) < now:
        return (f'non-zero start time {stamp:.6f} s + {float(times[-1]):.6f} s ends in the past '
                f'(controller clock {now:.6f} s)')
    for k in range(1, len(times)):
        if float(times[k]) <= float(times[k - 1]):
            return (f'time_from_start of point {k} ({float(times[k])} s) is not after point '
                    f'{k - 1} ({float(times[k - 1])} s)')
    for k, row in enumerate(positions):
        if len(row) != len(names):
            return f'point {k} has {len(row)} positions for {len(names)} joints'
    return None
