"""JointState / JointTrajectory conversions on real message objects."""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_collect.ros_conversions import MissingJointError, joint_state_to_arrays, trajectory_to_action


def test_joint_state_reordered_and_missing_joints_reported():
    msg = JointState(name=['b', 'a', 'extra'], position=[2.0, 1.0, 9.0], velocity=[0.2, 0.1, 0.0])
    pos, vel = joint_state_to_arrays(msg, ['a', 'b'])
    np.testing.assert_array_equal(pos, [1.0, 2.0])
    np.testing.assert_array_equal(vel, [0.1, 0.2])
    pos, vel = joint_state_to_arrays(JointState(name=['a', 'b'], position=[1.0, 2.0]), ['a', 'b'])
    np.testing.assert_array_equal(vel, [0.0, 0.0])  # the recorder stores unknown velocities as 0
    pos, vel = joint_state_to_arrays(JointState(name=['a', 'b'], position=[1.0, 2.0],
                                                velocity=[float('nan'), 0.5]), ['a', 'b'])
    np.testing.assert_array_equal(vel, [0.0, 0.5])
    with pytest.raises(MissingJointError, match=r"missing joint\(s\) \['gripper'\]"):
        joint_state_to_arrays(msg, ['a', 'gripper'])
    with pytest.raises(ValueError, match='2 positions for 3 names'):
        joint_state_to_arrays(JointState(name=['a', 'b', 'c'], position=[1.0, 2.0]), ['a'])
    with pytest.raises(ValueError, match=r"non-finite positions for \['b'\]"):
        joint_state_to_arrays(JointState(name=['a', 'b'], position=[1.0, float('nan')]), ['a', 'b'])


def test_trajectory_first_point_in_robot_order():
    msg = JointTrajectory(joint_names=['b', 'a'], points=[
        JointTrajectoryPoint(positions=[2.0, 1.0], time_from_start=Duration(nanosec=33_000_000)),
        JointTrajectoryPoint(positions=[5.0, 5.0], time_from_start=Duration(sec=1))])
    np.testing.assert_array_equal(trajectory_to_action(msg, ['a', 'b']), [1.0, 2.0])
    with pytest.raises(MissingJointError, match='gripper'):
        trajectory_to_action(msg, ['a', 'gripper'])
    with pytest.raises(ValueError, match='no points'):
        trajectory_to_action(JointTrajectory(joint_names=['a']), ['a'])
    with pytest.raises(ValueError, match='1 positions for 2 joints'):
        trajectory_to_action(JointTrajectory(joint_names=['a', 'b'], points=[
            JointTrajectoryPoint(positions=[1.0])]), ['a', 'b'])
    with pytest.raises(ValueError, match=r"non-finite target\(s\) for \['b'\]"):
        trajectory_to_action(JointTrajectory(joint_names=['a', 'b'], points=[
            JointTrajectoryPoint(positions=[1.0, float('nan')])]), ['a', 'b'])
    with pytest.raises(ValueError, match='repeated joint names'):
        trajectory_to_action(JointTrajectory(joint_names=['a', 'a'], points=[
            JointTrajectoryPoint(positions=[1.0, 2.0])]), ['a'])
    # joints beyond the recorded ones are ignored, as in a joint state
    wide = JointTrajectory(joint_names=['finger', 'b', 'a'], points=[
        JointTrajectoryPoint(positions=[0.5, 2.0, 1.0])])
    np.testing.assert_array_equal(trajectory_to_action(wide, ['a', 'b']), [1.0, 2.0])
