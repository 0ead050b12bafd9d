"""The joint-command checks the command gate and the simulator share."""
import math

import numpy as np
import pytest

from vla_common.joint_commands import Fault, check_command, check_times, to_robot_order

ROBOT = ['a', 'b', 'gripper']


@pytest.mark.parametrize('names, rows, kind, text', [
    (['a', 'b', 'x'], [[0, 0, 0]], 'unknown joint', "unknown joint(s) ['x']; this robot has"),
    (['a', 'b'], [[0, 0]], 'missing joint', "missing joint(s) ['gripper']"),
    (['a', 'b', 'gripper', 'a'], [[0, 0, 0, 0]], 'repeated joint', 'repeated joint names'),
    (ROBOT, [], 'no points', 'command has no points'),
    (ROBOT, [[0, 0]], 'wrong length', 'point 0 has 2 positions for 3 joints'),
    (['gripper', 'a', 'b'], [[0, math.nan, 0]], 'non-finite target',
     "point 0 has non-finite target(s) for ['a']: [0.0, nan, 0.0]"),
])
def test_check_command_names_kind_and_reason(names, rows, kind, text):
    fault = check_command(names, rows, ROBOT)
    assert isinstance(fault, Fault) and fault.kind == kind and text in str(fault)


def test_check_times_and_the_robot_order():
    assert check_times([0.0, 0.1]) is None and check_command(ROBOT, [[0, 0, 0]], ROBOT) is None
    assert check_times([0.1, 0.1]).kind == 'bad time'
    assert 'finite and >= 0' in check_times([math.inf]).reason
    out = to_robot_order(['gripper', 'b', 'a'], [[0.04, 0.2, 0.1], (0.0, 1.0, 2.0)], ROBOT)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0.1, 0.2, 0.04], [2.0, 1.0, 0.0]])
