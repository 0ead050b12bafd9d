"""teleop_collector on a real ROS graph: the MuJoCo sim_node, the scripted expert as the
command source, and the recorder writing real HDF5 episodes."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_collect.episode_io import list_episodes, open_episode, validate_episode
from vla_common.config_files import config_file as package_config_file
from vla_common.launching import NodeGroup, NodeSpec
from vla_common.qos import LATCHED
from vla_common.robot import robot_yaml
from vla_common.testing import GraphProbe, undescribed, wait_for

pytestmark = pytest.mark.ros
COMMAND_TOPIC = '/joint_trajectory_controller/joint_trajectory'
START, STOP, DISCARD = '/teleop_collector/start', '/teleop_collector/stop', '/teleop_collector/discard'


def bringup_config(name: str) -> str:
    """vla_bringup's config/<name> (the files its scenarios start nodes with), without importing it."""
    return str(package_config_file('vla_bringup', name))


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    out = tmp_path_factory.mktemp('demos')
    robot = str(robot_yaml())
    specs = [
        NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node',
                 param_files=(robot, bringup_config('sim.yaml')),
                 parameters={'task': 'pick_red', 'seed': 2, 'image_size': 64}),
        NodeSpec('vla_sim', 'scripted_expert', 'vla_sim.expert_node', 'scripted_expert',
                 param_files=(robot, bringup_config('sim.yaml')),
                 remappings=(('/vla/command', COMMAND_TOPIC),)),
        NodeSpec('vla_collect', 'teleop_collector', 'vla_collect.collector_node',
                 'teleop_collector', param_files=(robot, bringup_config('collect.yaml')),
                 parameters={'output_dir': str(out)}),
    ]
    group = NodeGroup(specs)
    probe = GraphProbe('collector_test_probe')
    try:
        group.start()
        probe.subscribe(String, '/teleop_collector/status', LATCHED)
        probe.subscribe(JointTrajectory, COMMAND_TOPIC)
        probe.voice = probe.publisher(String, '/voice_command')
        probe.joy = probe.publisher(Joy, '/joy')
        probe.joints = probe.publisher(JointState, '/joint_states')
        if not probe.wait_for_count(COMMAND_TOPIC, 10, timeout=90):
            pytest.fail('no expert commands:\n' + '\n'.join(
                f'--- {p.spec.name}\n{p.output()}' for p in group.processes))
        yield out, probe, group
    finally:
        probe.close()
        group.stop()


def status(probe) -> dict:
    return json.loads(probe.messages('/teleop_collector/status')[-1].data)


def wait_status(probe, predicate, timeout=20.0) -> dict:
    ok = wait_for(lambda: probe.stamped('/teleop_collector/status')
                  and predicate(status(probe)), timeout)
    assert ok, f'collector status never matched; last: {status(probe)}'
    return status(probe)


def test_parameters_are_described_and_start_up_ones_read_only(graph):
    _, probe, _ = graph
    descriptors = probe.parameter_descriptors('teleop_collector')
    assert 'bag_storage' in descriptors and undescribed(descriptors) == []
    assert descriptors['output_dir'].read_only and not descriptors['language_command'].read_only
    refused = probe.set_parameters('teleop_collector', {'rate': 10.0}).results[0]
    assert not refused.successful and 'read-only' in refused.reason


def test_services_record_a_valid_episode_of_the_commanded_action(graph):
    out, probe, group = graph
    refused = probe.call(SetBool, STOP, SetBool.Request(data=True))
    assert not refused.success and 'no episode is being recorded' in refused.message
    probe.voice.publish(String(data='pick up the red cube'))
    wait_status(probe, lambda s: s['next_language_command'] == 'pick up the red cube')
    started = probe.call(Trigger, START, Trigger.Request())
    assert started.success, started.message
    path = json.loads(started.message)['path']
    again = probe.call(Trigger, START, Trigger.Request())
    assert not again.success and 'already recording' in again.message
    n0 = len(probe.messages(COMMAND_TOPIC))
    wait_status(probe, lambda s: s['steps'] >= 45, timeout=30)
    stopped = probe.call(SetBool, STOP, SetBool.Request(data=True))
    assert stopped.success, stopped.message
    summary = json.loads(stopped.message)
    assert summary['path'] == path and summary['saved'] and summary['success'] is True
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        steps = len(ep)
        assert steps == summary['steps'] >= 45
        assert ep.language_command == 'pick up the red cube' and ep.success is True
        assert ep.images.shape[1:] == (64, 64, 3) and ep.images[0].std() > 0
        assert ep.joint_names == ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6',
                                  'gripper']
        assert ep.attrs['robot'] == 'vla_sim' and ep.fps == 30.0
        t = ep.timestamps[()]
        assert np.all(np.diff(t) > 0)
        actions = ep.actions[()]
        velocities = ep.joint_velocities[()]
    # every recorded action is one of the commands that went to the robot (not a velocity)
    sent = np.array([m.points[0].positions for m in probe.messages(COMMAND_TOPIC)[n0 - 5:]],
                    dtype=np.float32)
    distance = np.abs(actions[:, None, :] - sent[None, :, :]).max(axis=2).min(axis=1)
    assert np.quantile(distance, 0.9) < 1e-6
    assert np.abs(velocities).max() > 0  # the measured velocities are kept, as observations
    # nearly all steps kept; the drop count is reported, whatever the load on the machine
    assert summary['dropped'] <= steps


def test_joy_start_button_toggles_and_share_stops_as_failure(graph):
    out, probe, group = graph
    before = len(list_episodes(out))

    def press(button):
        buttons = [0] * 13
        buttons[button] = 1
        probe.joy.publish(Joy(axes=[0.0] * 8, buttons=buttons))
        time.sleep(0.1)
        probe.joy.publish(Joy(axes=[0.0] * 8, buttons=[0] * 13))

    press(9)  # OPTIONS: start
    wait_status(probe, lambda s: s['state'] == 'recording' and s['steps'] >= 10)
    press(9)  # OPTIONS again: stop as a success
    s = wait_status(probe, lambda s: s['state'] == 'idle')
    assert s['last_episode']['success'] is True and s['last_episode']['saved']
    press(9)
    wait_status(probe, lambda s: s['state'] == 'recording' and s['steps'] >= 5)
    press(8)  # SHARE: stop as a failure
    s = wait_status(probe, lambda s: s['state'] == 'idle')
    assert s['last_episode']['success'] is False and s['last_episode']['saved']
    episodes = list_episodes(out)
    assert len(episodes) == before + 2
    with open_episode(episodes[-1]) as ep:
        assert ep.success is False and len(ep) >= 5


def test_discard_leaves_no_file(graph):
    out, probe, group = graph
    before = sorted(p.name for p in out.iterdir())
    assert probe.call(Trigger, START, Trigger.Request()).success
    wait_status(probe, lambda s: s['steps'] >= 5)
    assert sorted(p.name for p in out.iterdir()) != before  # the .tmp exists while recording
    answer = probe.call(Trigger, DISCARD, Trigger.Request())
    assert answer.success, answer.message
    assert sorted(p.name for p in out.iterdir()) == before
    assert not probe.call(Trigger, DISCARD, Trigger.Request()).success


def test_joint_state_missing_a_joint_is_reported_not_zero_filled(graph):
    out, probe, group = graph
    for _ in range(3):
        probe.joints.publish(JointState(name=['joint1', 'joint2'], position=[0.0, 0.0]))
        time.sleep(0.05)
    s = wait_status(probe, lambda s: s['bad_messages'].get('joint_states', 0) >= 1, timeout=10)
    assert s['bad_messages']['joint_states'] >= 1
    assert all(p.alive() for p in group.processes)
