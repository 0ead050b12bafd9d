"""joy_teleop and keyboard_teleop driving the real MuJoCo sim_node over ROS topics."""
from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState, Joy
from trajectory_msgs.msg import JointTrajectory

from vla_common.config_files import config_file as package_config_file
from vla_common.launching import NodeProcess, NodeSpec
from vla_common.robot import robot_yaml
from vla_common.testing import GraphProbe, undescribed, wait_for

pytestmark = pytest.mark.ros
ROBOT_TOPIC = '/joint_trajectory_controller/joint_trajectory'


def bringup_config(name: str) -> str:
    """vla_bringup's config/<name> (the files its scenarios start nodes with), without importing it."""
    return str(package_config_file('vla_bringup', name))


PARAMS = (str(robot_yaml()), bringup_config('teleop.yaml'))


@pytest.fixture(scope='module')
def sim():
    proc = NodeProcess(NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node',
                                param_files=(str(robot_yaml()), bringup_config('sim.yaml')),
                                parameters={'image_size': 32}))
    probe = GraphProbe('teleop_test_probe')
    try:
        proc.start()
        probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
        probe.subscribe(JointTrajectory, ROBOT_TOPIC)
        probe.joy = probe.publisher(Joy, '/joy')
        if not probe.wait_for_count('/joint_states', 3, timeout=60):
            pytest.fail(f'sim_node published no joint states:\n{proc.output()}')
        yield probe
    finally:
        probe.close()
        proc.stop()


def joints(probe) -> np.ndarray:
    msg = probe.messages('/joint_states')[-1]
    return np.array(msg.position)


def commands_since(probe, n0):
    return [m for m in probe.messages(ROBOT_TOPIC)[n0:]]


def test_joy_deadman_jogs_joint1_and_release_holds(sim):
    probe = sim
    teleop = NodeProcess(NodeSpec('vla_collect', 'joy_teleop', 'vla_collect.joy_teleop_node',
                                  'joy_teleop', param_files=PARAMS,
                                  remappings=(('/vla/command', ROBOT_TOPIC),)))
    try:
        teleop.start()
        assert probe.wait_for_count(ROBOT_TOPIC, 5, timeout=60), teleop.output()
        descriptors = probe.parameter_descriptors('joy_teleop')
        assert 'deadman_button' in descriptors and undescribed(descriptors) == []
        start = joints(probe)
        buttons = [0] * 13
        axes = [0.0] * 8
        axes[0] = 1.0  # left stick: joint1
        # stick pushed but no deadman: the arm holds
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            probe.joy.publish(Joy(axes=axes, buttons=buttons))
            time.sleep(0.05)
        assert abs(joints(probe)[0] - start[0]) < 0.02
        buttons[4] = 1  # L1 deadman
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            probe.joy.publish(Joy(axes=axes, buttons=buttons))
            time.sleep(0.05)
        moved = joints(probe)[0] - start[0]
        assert moved > 0.1, moved  # 0.3 rad/s at the default speed x0.5
        buttons[4] = 0
        probe.joy.publish(Joy(axes=axes, buttons=buttons))
        time.sleep(0.5)
        n0 = len(probe.messages(ROBOT_TOPIC))
        time.sleep(0.5)
        held = [np.array(m.points[0].positions) for m in commands_since(probe, n0)]
        assert held and np.ptp(np.array(held)[:, 0]) < 1e-9  # a constant hold target
        assert abs(held[-1][0] - joints(probe)[0]) < 0.05
        n0 = len(probe.messages(ROBOT_TOPIC))
    finally:
        teleop.stop()
    time.sleep(0.3)
    assert teleop.returncode == 0, teleop.output()
    assert commands_since(probe, n0), 'a hold is sent when the node stops'


def test_keyboard_keys_jog_the_arm(sim):
    probe = sim
    spec = NodeSpec('vla_collect', 'keyboard_teleop', 'vla_collect.keyboard_teleop_node',
                    'keyboard_teleop', param_files=PARAMS,
                    remappings=(('/vla/command', ROBOT_TOPIC),))
    proc = subprocess.Popen(spec.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        n0 = len(probe.messages(ROBOT_TOPIC))
        assert wait_for(lambda: len(probe.messages(ROBOT_TOPIC)) > n0 + 3, 60)
        descriptors = probe.parameter_descriptors('keyboard_teleop')
        assert 'key_step' in descriptors and undescribed(descriptors) == []
        start = joints(probe)
        proc.stdin.write(b'qqqqq')  # joint1 +, five steps of 0.1 s at 0.3 rad/s
        proc.stdin.flush()
        assert wait_for(lambda: joints(probe)[0] - start[0] > 0.1, 10), joints(probe) - start
    finally:
        proc.send_signal(2)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert b'keyboard teleop' in out
