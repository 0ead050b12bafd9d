"""JointState and JointTrajectory -> numpy conversions shared by the recorder, the controller
and the tools (images, stamps and durations: :mod:`vla_common.messages`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory


class MissingJointError(ValueError):
    """A message lacks joints the robot is configured with; the message names them."""


def _index(names: Sequence[str], wanted: Sequence[str], what: str) -> list[int]:
    lookup = {str(n): i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in lookup]
    if missing:
        raise MissingJointError(f'{what} lacks joint(s) {missing}; it names {list(names)}, '
                                f'the robot is configured with {list(wanted)}')
    return [lookup[n] for n in wanted]


def joint_state_to_arrays(msg: JointState, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(positions, velocities) as float64 arrays in ``joint_names`` order.

    Raises :class:`MissingJointError` naming every configured joint the message lacks (a
    position is never zero-filled), and ValueError when ``position`` does not match ``name``
    or a position is not finite.  An empty ``velocity`` (drivers may leave it out) gives zero
    velocities, and a NaN velocity (drivers use it for "unknown") reads as 0: velocity is the
    only field that is ever filled in.  A ``velocity`` of the wrong length is an error.
    """
    index = _index(msg.name, joint_names, 'JointState')
    if len(msg.position) != len(msg.name):
        raise ValueError(f'JointState has {len(msg.name)} names but {len(msg.position)} positions')
    position = np.asarray(msg.position, dtype=np.float64)[index]
    if not np.all(np.isfinite(position)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(position))]
        raise ValueError(f'JointState has non-finite positions for {bad}')
    if len(msg.velocity) == 0:
        velocity = np.zeros(len(joint_names))
    elif len(msg.velocity) != len(msg.name):
        raise ValueError(f'JointState has {len(msg.name)} names but {len(msg.velocity)} velocities')
    else:
        velocity = np.asarray(msg.velocity, dtype=np.float64)[index]
        velocity = np.where(np.isfinite(velocity), velocity, 0.0)
    return position, velocity


def trajectory_to_action(msg: JointTrajectory, joint_names: Sequence[str]) -> np.ndarray:
    """The command a trajectory sends: its first point's positions in ``joint_names`` order.

    Raises :class:`MissingJointError` for a joint the trajectory does not command and ValueError
    for a trajectory with no points, a point whose length differs from ``joint_names`` of the
    message, or non-finite positions.
    """
    if not msg.points:
        raise ValueError('JointTrajectory has no points')
    index = _index(msg.joint_names, joint_names, 'JointTrajectory')
    positions = msg.points[0].positions
    if len(positions) != len(msg.joint_names):
        raise ValueError(f'JointTrajectory point 0 has {len(positions)} positions for '
                         f'{len(msg.joint_names)} joints')
    action = np.asarray(positions, dtype=np.float64)[index]
    if not np.all(np.isfinite(action)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(action))]
        raise ValueError(f'JointTrajectory has non-finite positions for {bad}')
    return action
