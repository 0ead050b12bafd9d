"""Jogging logic (ROS-free): joint and Cartesian jogging, deadman, gripper, limits, mappings."""
from __future__ import annotations

import numpy as np
import pytest

from vla_collect.joy_buttons import ButtonEdges
from vla_collect.teleop import (CARTESIAN, JogController, JogInput, JoyMapping, key_input,
                                load_kinematics)

NAMES = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
LOWER = [-3.0, -1.5, -2.5, -3.0, -2.0, -3.0, 0.0]
UPPER = [3.0, 1.5, 2.5, 3.0, 2.0, 3.0, 0.08]
VMAX = [2.0] * 6 + [0.5]
HOME = np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0, 0.08])


def controller(**kwargs) -> JogController:
    jog = JogController(NAMES, LOWER, UPPER, VMAX, speed_scale=1.0, **kwargs)
    jog.set_measured(HOME)
    return jog


def test_deadman_gates_motion_and_release_holds_the_measured_position():
    jog = controller()
    assert JogController(NAMES, LOWER, UPPER, VMAX).step(JogInput(enabled=True), 0.1) is None
    stick = JogInput(enabled=False, joints=np.array([1.0, 0, 0, 0, 0, 0]))
    np.testing.assert_allclose(jog.step(stick, 0.1), HOME)  # no deadman: no motion
    stick.enabled = True
    target = jog.step(stick, 0.1)
    assert target[0] == pytest.approx(0.06)  # 0.6 rad/s for 0.1 s
    measured = HOME + np.array([0.03, 0, 0, 0, 0, 0, 0])
    jog.set_measured(measured)
    stick.enabled = False
    np.testing.assert_allclose(jog.step(stick, 0.1), measured)  # released: stop where it is


def test_targets_stay_in_bounds_and_near_the_arm():
    jog = controller(max_lead=0.2)
    inp = JogInput(enabled=True, joints=np.array([0, 1.0, 0, 0, 0, 0]))
    for _ in range(100):
        target = jog.step(inp, 0.1)
    assert target[1] == pytest.approx(HOME[1] + 0.2)  # the arm did not follow: lead capped
    jog.set_measured(np.array([0, 1.45, 0, 0, 0, 0, 0.0]))
    for _ in range(10):
        target = jog.step(inp, 0.1)
    assert target[1] == pytest.approx(1.5)  # joint bound


def test_gripper_opens_and_closes_at_its_speed():
    jog = controller()
    close = JogInput(enabled=True, joints=np.zeros(6), gripper=-1)
    assert jog.step(close, 0.1)[6] == pytest.approx(0.03)  # 0.5 m/s x 0.1 s from 0.08
    for _ in range(5):
        target = jog.step(close, 0.1)
    assert target[6] == 0.0
    assert jog.step(JogInput(enabled=True, joints=np.zeros(6), gripper=1), 0.1)[6] == pytest.approx(0.05)


def test_speed_scaling_is_bounded():
    jog = controller()
    for _ in range(20):
        jog.scale_speed(1.25)
    assert jog.speed_scale == 1.0
    for _ in range(40):
        jog.scale_speed(0.8)
    assert jog.speed_scale == pytest.approx(0.1)


def test_cartesian_jogging_moves_the_tool_along_x():
    kin = load_kinematics('vla_sim')
    jog = controller(kinematics=kin)
    assert jog.toggle_mode() == CARTESIAN
    start, _ = kin.fk(HOME)
    inp = JogInput(enabled=True, joints=np.zeros(6), cartesian=np.array([1.0, 0, 0, 0]))
    for _ in range(5):
        target = jog.step(inp, 0.1)
        jog.set_measured(target)  # an arm that follows perfectly
    pos, rot = kin.fk(target)
    assert pos[0] - start[0] == pytest.approx(0.04, abs=0.005)  # 0.08 m/s for 0.5 s
    assert abs(pos[1] - start[1]) < 0.003 and abs(pos[2] - start[2]) < 0.003
    with pytest.raises(ValueError, match='needs the arm kinematics'):
        controller().toggle_mode()


def test_joy_mapping_and_button_edges():
    mapping = JoyMapping()
    axes = [0.05, -0.8, 0, 0, 0.5, 0, 0, 0]
    buttons = [0] * 13
    buttons[4] = buttons[7] = 1
    inp = mapping.to_input(axes, buttons)
    assert inp.enabled and inp.gripper == -1
    np.testing.assert_allclose(inp.joints, [0.0, -0.8, 0.5, 0, 0, 0])  # deadzone on axis 0
    np.testing.assert_allclose(inp.cartesian, [-0.8, 0.0, 0.5, 0.0])
    assert not mapping.to_input([], []).enabled  # short messages read as released
    with pytest.raises(ValueError, match='joint_axis_signs has 1 values for 6'):
        JoyMapping(joint_axis_signs=[1.0])
    edges = ButtonEdges()
    assert edges.pressed([0, 1]) == {1}
    assert edges.pressed([0, 1]) == set()  # held: acts once
    assert edges.pressed([1, 0, 1]) == {0, 2}


def test_keys():
    inp = key_input('w', 'joint', 6)
    np.testing.assert_array_equal(inp.joints, [0, 1, 0, 0, 0, 0])
    inp = key_input('w', CARTESIAN, 6)
    np.testing.assert_array_equal(inp.cartesian, [1, 0, 0, 0])
    assert key_input('o', 'joint', 6).gripper == 1
    assert key_input('?', 'joint', 6) is None
