import math

import numpy as np
import pytest

from vla_safety.rules import (Fault, FaultLog, SafetyConfigError, SafetyLimits, check_command,
                              check_joint_state, check_times, clip_to_bounds, joint_state_arrays,
                              limit_step, limit_trajectory, sample_trajectory, to_robot_order)

NAMES = ['a', 'b', 'gripper']


@pytest.fixture
def limits():
    return SafetyLimits.from_values(NAMES, [-1.0, -2.0, 0.0], [1.0, 2.0, 0.08], [2.0, 1.0, 0.2])


def test_defaults_are_the_course_limits(limits):
    np.testing.assert_allclose(limits.position_limit, [3.5] * 3)
    np.testing.assert_allclose(limits.velocity_limit, [2.0] * 3)
    assert limits.n == 3


@pytest.mark.parametrize('kwargs, message', [
    ({'joint_names': []}, 'joint_names is empty'),
    ({'joint_names': ['a', 'a', 'c']}, 'repeated'),
    ({'lower': [-1.0, -2.0]}, 'joint_lower has 2 values for 3 joints'),
    ({'upper': [1.0, -3.0, 0.08]}, "below joint_upper for ['b']"),
    ({'max_velocity': [1.0, 0.0, 1.0]}, 'max_velocity must be > 0'),
    ({'position_limit': float('nan')}, 'position_limit must be finite'),
    ({'velocity_limit': -1.0}, 'velocity_limit must be > 0'),
])
def test_bad_limits_name_the_bad_values(kwargs, message):
    values = dict(joint_names=NAMES, lower=[-1.0, -2.0, 0.0], upper=[1.0, 2.0, 0.08],
                  max_velocity=1.0)
    values.update(kwargs)
    with pytest.raises(SafetyConfigError, match=message.replace('[', r'\[').replace(']', r'\]')):
        SafetyLimits.from_values(**values)


def test_clip_to_bounds_reports_the_clipped_joints(limits):
    clipped, outside = clip_to_bounds(np.array([1.5, -0.5, -0.01]), limits)
    np.testing.assert_allclose(clipped, [1.0, -0.5, 0.0])
    assert outside.tolist() == [True, False, True]


def test_limit_step_caps_the_change_per_tick(limits):
    out, limited = limit_step(np.zeros(3), np.array([1.0, -0.01, 0.05]), 0.1, limits.max_velocity)
    np.testing.assert_allclose(out, [0.2, -0.01, 0.02])
    assert limited.tolist() == [True, False, True]
    with pytest.raises(ValueError, match='dt must be finite'):
        limit_step(np.zeros(3), np.zeros(3), -1.0, limits.max_velocity)


def test_limit_trajectory_uses_the_time_between_points(limits):
    times = np.array([0.0, 0.5, 1.5])
    points = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    out, limited = limit_trajectory(np.zeros(3), times, points, limits.max_velocity, first_dt=0.1)
    # point 0 may move 0.1 s worth (at 2 rad/s); point 1 has 0.5 s; point 2 has 1 s
    np.testing.assert_allclose(out[:, 0], [0.2, 1.0, -1.0])
    assert limited
    out, limited = limit_trajectory(np.zeros(3), np.array([1.0]), np.array([[1.0, 0.5, 0.08]]),
                                    limits.max_velocity, first_dt=1.0)
    assert not limited


def test_sample_trajectory_interpolates_then_holds():
    start = np.zeros(2)
    points = np.array([[1.0, 2.0], [1.0, 0.0]])
    times = np.array([1.0, 2.0])
    np.testing.assert_allclose(sample_trajectory(start, times, points, -1.0), [0, 0])
    np.testing.assert_allclose(sample_trajectory(start, times, points, 0.5), [0.5, 1.0])
    np.testing.assert_allclose(sample_trajectory(start, times, points, 1.5), [1.0, 1.0])
    np.testing.assert_allclose(sample_trajectory(start, times, points, 9.0), [1.0, 0.0])


@pytest.mark.parametrize('names, rows, kind, text', [
    (['a', 'b', 'x'], [[0, 0, 0]], 'unknown joint', "unknown joint(s) ['x']"),
    (['a', 'b'], [[0, 0]], 'missing joint', "missing joint(s) ['gripper']"),
    (['a', 'b', 'gripper', 'a'], [[0, 0, 0, 0]], 'repeated joint', 'repeated'),
    (NAMES, [], 'no points', 'no points'),
    (NAMES, [[0, 0]], 'wrong length', 'point 0 has 2 positions for 3 joints'),
    (NAMES, [[0, 0, 0], [0, math.nan, 0]], 'non-finite target', "point 1 has non-finite target(s) for ['b']"),
    (NAMES, [[0, 0, math.inf]], 'non-finite target', "for ['gripper']"),
])
def test_check_command_names_the_fault(limits, names, rows, kind, text):
    fault = check_command(names, rows, limits)
    assert isinstance(fault, Fault) and fault.kind == kind and text in str(fault)


def test_good_command_is_reordered_to_the_robot_order(limits):
    names, rows = ['gripper', 'b', 'a'], [[0.04, 0.2, 0.1]]
    assert check_command(names, rows, limits) is None
    np.testing.assert_allclose(to_robot_order(names, rows, limits), [[0.1, 0.2, 0.04]])


def test_check_times():
    assert check_times([0.0, 0.1]) is None
    assert 'must increase' in str(check_times([0.1, 0.1]))
    assert '>= 0' in str(check_times([-0.1]))
    assert '>= 0' in str(check_times([math.nan]))


def test_joint_state_arrays_reorders_and_ignores_extra_joints(limits):
    q, v = joint_state_arrays(['finger', 'gripper', 'b', 'a'], [9, 0.04, 0.2, 0.1],
                              [9, 0.0, -0.1, 0.3], limits)
    np.testing.assert_allclose(q, [0.1, 0.2, 0.04])
    np.testing.assert_allclose(v, [0.3, -0.1, 0.0])
    q, v = joint_state_arrays(NAMES, [0, 0, 0], [], limits)
    assert v is None
    fault = joint_state_arrays(['a', 'b'], [0, 0], [], limits)
    assert fault.kind == 'joint state missing joints' and "missing joint(s) ['gripper']" in str(fault)
    assert fault.kind == 'joint state missing joints' and "expected all of ['a', 'b', 'gripper']" in str(fault)
    q, _ = joint_state_arrays(NAMES, [0, math.nan, 0], [], limits)  # judged by check_joint_state
    assert math.isnan(q[1])
    assert joint_state_arrays(NAMES, [0, 0], [], limits).kind == 'malformed joint state'
    assert '2 positions for 3 names' in str(joint_state_arrays(NAMES, [0, 0], [], limits))
    assert '1 velocities for 3 names' in str(joint_state_arrays(NAMES, [0, 0, 0], [0], limits))


def test_check_joint_state_limits():
    limits = SafetyLimits.from_values(NAMES, [-4, -4, 0], [4, 4, 1], 1.0,
                                      position_limit=[3.5, 0.3, 3.5], velocity_limit=2.0)
    assert check_joint_state(np.zeros(3), np.zeros(3), limits) is None
    fault = check_joint_state(np.array([0.0, -0.31, 0.0]), None, limits)
    assert fault.kind == 'joint position limit' and 'b at -0.310' in fault.reason
    fault = check_joint_state(np.zeros(3), np.array([0.0, 0.0, 2.5]), limits)
    assert fault.kind == 'joint velocity limit' and 'gripper at +2.500/s' in fault.reason
    assert check_joint_state(np.array([math.nan, 0, 0]), None, limits).kind == 'non-finite joint state'
    assert check_joint_state(np.zeros(3), np.array([0, math.inf, 0]), limits).kind == 'non-finite joint state'


def test_fault_log_is_new_once_per_kind():
    log = FaultLog()
    assert log.add(Fault('x', 'first')) and not log.add(Fault('x', 'second')) and log.add('y')
    assert log.counts == {'x': 2, 'y': 1} and log.total == 3
