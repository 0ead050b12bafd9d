"""JointState and JointTrajectory -> numpy conversions as the recorder and the dataset tools
store them (the joint-state parser itself, images, stamps and durations:
:mod:`vla_common.messages`)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from vla_common.joint_commands import check_command, to_robot_order
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

    The trajectory passes the checks the command gate and the simulator make
    (:func:`vla_common.joint_commands.check_command`: points, repeated joints, row lengths,
    finite targets; a ValueError with the same sentence), except that joints beyond
    ``joint_names`` are ignored, as in a joint state (a bag may command more joints than a
    dataset records).  Raises :class:`MissingJointError` for a joint it does not command.
    """
    names = [str(name) for name in msg.joint_names]
    rows = [point.positions for point in msg.points]
    fault = check_command(names, rows, names)
    if fault is not None:
        raise ValueError(f'JointTrajectory: {fault.reason}')
    joint_index(names, joint_names, 'JointTrajectory')  # MissingJointError naming what it lacks
    return to_robot_order(names, rows[:1], joint_names)[0]
