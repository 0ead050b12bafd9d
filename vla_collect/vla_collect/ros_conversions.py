"""JointState and JointTrajectory -> numpy conversions as the recorder and the dataset tools
store them (the joint-state parser itself, images, stamps and durations:
:mod:`vla_common.messages`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from vla_common.messages import MissingJointError, joint_index, known_velocities, parse_joint_state

__all__ = ['MissingJointError', 'joint_state_to_arrays', 'trajectory_to_action']


def joint_state_to_arrays(msg: JointState, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(positions, velocities) as float64 arrays in ``joint_names`` order, as the recorder stores
    them: :func:`vla_common.messages.parse_joint_state` (finite positions required, a clear
    :class:`MissingJointError` for a missing joint) with unknown velocities as zeros (an empty
    ``velocity`` gives zeros, a NaN velocity reads as 0).
    """
    positions, velocities = parse_joint_state(msg, joint_names)
    return positions, known_velocities(velocities, len(joint_names))


def trajectory_to_action(msg: JointTrajectory, joint_names: Sequence[str]) -> np.ndarray:
    """The command a trajectory sends: its first point's positions in ``joint_names`` order.

    Raises :class:`MissingJointError` for a joint the trajectory does not command and ValueError
    for a trajectory with no points, a point whose length differs from ``joint_names`` of the
    message, or non-finite positions.
    """
    if not msg.points:
        raise ValueError('JointTrajectory has no points')
    index = joint_index(msg.joint_names, joint_names, 'JointTrajectory')
    positions = msg.points[0].positions
    if len(positions) != len(msg.joint_names):
        raise ValueError(f'JointTrajectory point 0 has {len(positions)} positions for '
                         f'{len(msg.joint_names)} joints')
    action = np.asarray(positions, dtype=np.float64)[index]
    if not np.all(np.isfinite(action)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(action))]
        raise ValueError(f'JointTrajectory has non-finite positions for {bad}')
    return action
