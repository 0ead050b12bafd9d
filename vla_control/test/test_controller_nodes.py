"""vla_controller as a real node with a tiny real checkpoint.

The test publishes the camera, joint states and commands itself (the controller's camera is
remapped to a topic the test feeds), so it can make the camera stale, send malformed input and
check that the controller holds and keeps running.  One test drives the simulated arm through
the gate and monitor."""
import dataclasses
import os
import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from safetensors.torch import load_file, save_file
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from vla_bringup.scenarios import (ROBOT_COMMAND_TOPIC, REQUEST_TOPIC, controller_nodes,
                                   robot_nodes, safety_nodes)
from vla_collect.episode_io import list_episodes, open_episode
from vla_common.launching import NodeGroup
from vla_common.testing import GraphProbe, wait_for

pytestmark = pytest.mark.ros
JOINTS = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
CAMERA = '/test/camera'
SIZE = 64


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    from vla_policy.testing import make_tiny_checkpoint
    root = tmp_path_factory.mktemp('ckpt')
    good = make_tiny_checkpoint(root / 'good', joint_names=JOINTS, image_size=SIZE,
                                action_mean=[0.0, 0.2, 1.6, 1.3, 0.0, 0.0, 0.04])
    # a checkpoint whose action head has NaN weights: the model outputs NaN
    nan = make_tiny_checkpoint(root / 'nan', joint_names=JOINTS, image_size=SIZE)
    weights = load_file(str(nan / 'model.safetensors'))
    weights = {k: v.fill_(float('nan')) if k.startswith('head.') else v for k, v in weights.items()}
    save_file(weights, str(nan / 'model.safetensors'), metadata={'format': 'pt'})
    wrist = make_tiny_checkpoint(root / 'wrist', joint_names=JOINTS, image_size=SIZE, extra_cameras=['wrist'],
                                 action_mean=[0.0, 0.2, 1.6, 1.3, 0.0, 0.0, 0.04])
    # a longer plan (12 actions, 4 served per chunk): room for plan_points
    long = make_tiny_checkpoint(root / 'long', joint_names=JOINTS, image_size=SIZE, chunk_size=12,
                                n_action_steps=4, action_mean=[0.0, 0.2, 1.6, 1.3, 0.0, 0.0, 0.04])
    return {'good': good, 'nan': nan, 'wrist': wrist, 'long': long}


def controller(checkpoint, **parameters):
    spec = controller_nodes({'checkpoint': str(checkpoint)})[0]
    return dataclasses.replace(spec, parameters={**spec.parameters, **parameters},
                               remappings=(('/camera/image_raw', CAMERA),))


def image_msg(height=SIZE, width=SIZE, encoding='rgb8', step=None, fill=90):
    msg = Image(height=height, width=width, encoding=encoding)
    msg.step = width * 3 if step is None else step
    msg.data = bytes([fill]) * (msg.step * height)
    return msg


class Feed:
    """Camera frames and joint states at 30 Hz from the test, each switchable."""

    def __init__(self, probe) -> None:
        self.probe, self.camera, self.states = probe, True, True
        self.image = image_msg()
        self.position = [0.0, 0.2, 1.6, 1.3, 0.0, 0.0, 0.04]
        probe.timer(1 / 30, self.publish)

    def publish(self) -> None:
        if self.camera:
            self.probe.publish(Image, CAMERA, self.image, qos_profile_sensor_data)
        if self.states:
            self.probe.publish(JointState, '/joint_states', JointState(
                name=JOINTS, position=list(self.position), velocity=[0.0] * 7),
                qos_profile_sensor_data)


def status(probe, predicate, timeout=15.0):
    """The next controller diagnostics whose values satisfy predicate (None on timeout)."""
    probe.clear('/diagnostics')

    def match(msg):
        return any(s.name == 'vla_control: vla_controller' and predicate(
            {**{kv.key: kv.value for kv in s.values}, 'message': s.message}) for s in msg.status)
    msg = probe.wait_for_message('/diagnostics', match, timeout)
    if msg is None:
        return None
    return [{**{kv.key: kv.value for kv in s.values}, 'message': s.message}
            for s in msg.status if s.name == 'vla_control: vla_controller'][0]


@pytest.fixture
def graph():
    probe = GraphProbe('controller_test_probe')
    groups = []
    probe.subscribe(JointTrajectory, REQUEST_TOPIC)
    probe.subscribe(DiagnosticArray, '/diagnostics', 50)

    def start(*specs):
        group = NodeGroup(specs).start()
        groups.append(group)
        return group
    try:
        yield probe, start
    finally:
        probe.close()
        for group in groups:
            group.stop()


def test_stale_camera_and_bad_input_make_the_controller_hold(graph, checkpoints):
    probe, start = graph
    group = start(controller(checkpoints['good'], max_observation_age=0.3))
    feed = Feed(probe)
    assert status(probe, lambda v: 'no command' in v['hold_reason'], 60) is not None, \
        group.processes[0].output()
    probe.publish(String, '/voice_command', String(data='pick up the red cube'))
    acting = status(probe, lambda v: v['state'] == 'active' and int(v['actions']) > 5)
    assert acting is not None, group.processes[0].output()
    cmd = probe.messages(REQUEST_TOPIC)[-1]
    assert list(cmd.joint_names) == JOINTS and len(cmd.points) == 1
    assert cmd.points[0].time_from_start.nanosec > 0  # one control tick
    assert all(np.isfinite(cmd.points[0].positions))
    # the camera goes quiet: hold, and say why
    feed.camera = False
    held = status(probe, lambda v: 'camera image is stale' in v['hold_reason'])
    assert held is not None and held['state'] == 'holding'
    probe.clear(REQUEST_TOPIC)
    wait_for(lambda: False, 0.5)
    assert len(probe.messages(REQUEST_TOPIC)) == 0
    # malformed images (wrong step, unsupported encoding, zero size) and joint states missing
    # joints are counted and ignored; the robot keeps holding and the node keeps running
    for bad in (image_msg(step=SIZE * 3 - 5), image_msg(encoding='yuv422'), image_msg(0, 0)):
        probe.publish(Image, CAMERA, bad, qos_profile_sensor_data)
    probe.publish(JointState, '/joint_states', JointState(name=JOINTS[:3], position=[0.0] * 3),
                  qos_profile_sensor_data)
    counted = status(probe, lambda v: int(v.get('fault: bad image', 0)) >= 3
                     and int(v.get('fault: bad joint state', 0)) >= 1)
    assert counted is not None and 'stale' in counted['hold_reason']
    assert not group.dead()
    # the camera comes back: the controller acts again
    feed.camera = True
    assert status(probe, lambda v: v['state'] == 'active') is not None
    log = group.processes[0].output(20000)
    assert log.count('holding: camera image is stale') == 1  # said once, not every tick
    assert 'ignored camera image' in log


def test_a_checkpoint_with_a_wrist_camera_waits_for_both_cameras(graph, checkpoints):
    probe, start = graph
    group = start(controller(checkpoints['wrist'], max_observation_age=0.3, command='pick up the red cube'))
    feed = Feed(probe)
    held = status(probe, lambda v: 'wrist camera' in v['hold_reason'], 60)
    assert held is not None, group.processes[0].output()
    assert '/camera/wrist/image_raw' in held['hold_reason']
    probe.timer(1 / 30, lambda: probe.publish(Image, '/camera/wrist/image_raw', image_msg(fill=150),
                                              qos_profile_sensor_data))
    assert status(probe, lambda v: v['state'] == 'active' and int(v['actions']) > 5) is not None, \
        group.processes[0].output()
    feed.camera = False  # the main camera goes quiet: hold although the wrist camera is fresh
    assert status(probe, lambda v: 'camera image is stale' in v['hold_reason']) is not None


def test_nan_model_output_holds_and_a_broken_checkpoint_is_an_error_state(graph, checkpoints,
                                                                          tmp_path):
    probe, start = graph
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'config.json').write_text('{"not": "a config"')
    group = start(controller(checkpoints['nan'], command='pick up the red cube'))
    Feed(probe)
    nan = status(probe, lambda v: int(v.get('fault: bad model output', 0)) >= 1, 60)
    assert nan is not None, group.processes[0].output()
    assert 'not finite' in nan['hold_reason'] and int(nan['actions']) == 0
    assert len(probe.messages(REQUEST_TOPIC)) == 0
    group.stop()
    group = start(controller(broken))
    error = status(probe, lambda v: v['state'] == 'error', 60)
    assert error is not None and 'not usable' in error['message'], group.processes[0].output()
    assert not group.dead() and len(probe.messages(REQUEST_TOPIC)) == 0


def test_controller_drives_the_simulated_arm_through_the_gate(graph, checkpoints):
    probe, start = graph
    sim = [dataclasses.replace(s, parameters={**s.parameters, 'image_size': SIZE})
           for s in robot_nodes({'use_sim': True})]
    ctl = dataclasses.replace(controller(checkpoints['good'], command='pick up the red cube'),
                              remappings=())
    group = start(*sim, *safety_nodes({}), ctl)
    probe.subscribe(JointTrajectory, ROBOT_COMMAND_TOPIC)
    probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
    acting = status(probe, lambda v: v['state'] == 'active' and int(v['actions']) > 30, 90)
    assert acting is not None, '\n'.join(p.output() for p in group.processes)
    assert float(acting['achieved_rate_hz']) > 10.0  # 30 Hz nominal; loose under test load
    assert float(acting['latency_p99_ms']) > 0.0
    forwarded = probe.messages(ROBOT_COMMAND_TOPIC)
    assert len(forwarded) > 10, 'the gate forwarded the controller commands to the robot'
    states = probe.messages('/joint_states')
    moved = np.abs(np.array(states[-1].position) - np.array(states[0].position)).max()
    assert moved > 1e-3, 'the arm did not move'
    assert not group.dead()


def test_a_stale_joint_state_holds_at_the_last_target_not_at_the_stale_position(graph, checkpoints):
    probe, start = graph
    group = start(controller(checkpoints['good'], max_observation_age=0.3, command='pick up the red cube'))
    feed = Feed(probe)
    feed.position = [0.1, 0.3, 1.5, 1.2, 0.1, 0.1, 0.03]  # away from where the policy steers
    assert status(probe, lambda v: v['state'] == 'active' and int(v['actions']) > 10, 60) is not None, \
        group.processes[0].output()
    feed.states = False
    held = status(probe, lambda v: 'joint state is stale' in v['hold_reason'])
    assert held is not None, group.processes[0].output()
    sent = [list(m.points[0].positions) for m in probe.messages(REQUEST_TOPIC)]
    hold, last_action = np.array(sent[-1]), np.array(sent[-2])
    assert np.array_equal(hold, last_action), 'the hold repeats the last commanded target'
    assert not np.allclose(hold, feed.position, atol=1e-6), 'never the stale measured position'
    count = len(sent)
    wait_for(lambda: False, 0.5)
    assert len(probe.messages(REQUEST_TOPIC)) == count  # one hold, then nothing
    assert 'last commanded target' in group.processes[0].output(20000)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_publish_the_hold_before_the_node_exits(graph, checkpoints, sig,
                                                                    tmp_path):
    """rclpy's own SIGINT handler used to shut the context down first: no hold ever left.
    The run is recorded (``record_dir``) and its episode finished on the way out."""
    probe, start = graph
    group = start(controller(checkpoints['good'], command='pick up the red cube',
                             record_dir=str(tmp_path / 'rollouts')))
    feed = Feed(probe)
    feed.position = [0.1, 0.3, 1.5, 1.2, 0.1, 0.1, 0.03]
    assert status(probe, lambda v: v['state'] == 'active' and int(v['actions']) > 10, 60) is not None, \
        group.processes[0].output()
    node = group.processes[0]
    signalled = time.monotonic()
    os.killpg(node.pid, sig)
    assert wait_for(lambda: not node.alive(), 20), node.output()
    assert node.returncode == 0, node.output()
    after = [m for t, m in probe.stamped(REQUEST_TOPIC) if t >= signalled]
    assert after, 'no hold after the signal:\n' + node.output()
    np.testing.assert_allclose(after[-1].points[0].positions, feed.position, atol=1e-9)
    log = node.output(20000)
    assert f'{sig.name} received' in log and 'shutting down: holding at the measured position' in log
    episodes = list_episodes(tmp_path / 'rollouts')
    assert [p.name for p in episodes] == ['episode_000000.hdf5'], log
    assert f'recording the run to {tmp_path / "rollouts" / "episode_000000.hdf5"}' in log
    with open_episode(episodes[0]) as episode:
        assert episode.language_command == 'pick up the red cube' and len(episode) > 10


def test_lockstep_answers_each_tick_once_on_that_ticks_observation(graph, checkpoints):
    """lockstep: no timer; a tick is taken when its image and joint state (one stamp) are in
    and the node clock has reached it, and every tick is answered (settling holds included),
    so a lock-step simulator never waits out its timeout."""
    from builtin_interfaces.msg import Time
    from rosgraph_msgs.msg import Clock
    probe, start = graph
    group = start(controller(checkpoints['good'], lockstep=True, use_sim_time=True,
                             command_settle_time=0.1))
    assert status(probe, lambda v: v['state'] == 'active', 60) is not None, \
        group.processes[0].output()
    position = [0.0, 0.2, 1.6, 1.3, 0.0, 0.0, 0.04]

    def publish_tick(k, clock=True):
        stamp = Time(sec=100 + k // 30, nanosec=int((k % 30) * 1e9 / 30))
        image = image_msg()
        image.header.stamp = stamp
        probe.publish(Image, CAMERA, image, qos_profile_sensor_data)
        probe.publish(JointState, '/joint_states', JointState(
            header=image.header, name=JOINTS, position=position, velocity=[0.0] * 7),
            qos_profile_sensor_data)
        if clock:
            probe.publish(Clock, '/clock', Clock(clock=stamp))
        return stamp.sec + stamp.nanosec * 1e-9

    def answers():
        return probe.messages(REQUEST_TOPIC)

    # before any command: the tick is answered with a hold where the arm is (the first
    # observation is restated until the controller's subscriptions have matched: best effort)
    t0 = 0.0
    for _ in range(40):
        t0 = publish_tick(0)
        if wait_for(lambda: len(answers()) >= 1, 0.5):
            break
    assert len(answers()) == 1, group.processes[0].output()
    np.testing.assert_allclose(answers()[0].points[0].positions, position)
    # the command answers the same tick again (the settling hold), then every tick once
    probe.publish(String, '/voice_command', String(data='pick up the red cube'))
    assert wait_for(lambda: len(answers()) == 2, 20), group.processes[0].output()
    for k in range(1, 13):
        tick = publish_tick(k)
        assert wait_for(lambda: len(answers()) == k + 2, 20), (k, group.processes[0].output())
        sent = answers()[-1]
        assert sent.header.stamp.sec + sent.header.stamp.nanosec * 1e-9 >= tick - 1e-6
        assert all(np.isfinite(sent.points[0].positions))
    # a restated joint state of the last tick (a keep-alive) is not a new tick; an observation
    # whose clock has not come yet is answered once the clock reaches it
    probe.publish(JointState, '/joint_states', JointState(
        header=answers()[-1].header, name=JOINTS, position=position, velocity=[0.0] * 7),
        qos_profile_sensor_data)
    publish_tick(13, clock=False)
    wait_for(lambda: False, 0.3)
    assert len(answers()) == 14
    probe.publish(Clock, '/clock', Clock(clock=Time(sec=100, nanosec=int(13 * 1e9 / 30))))
    assert wait_for(lambda: len(answers()) == 15, 20), group.processes[0].output()
    acting = status(probe, lambda v: int(v['actions']) >= 5)
    assert acting is not None and int(acting['overruns']) == 0 and int(acting['faults']) == 0
    assert t0 > 0 and not group.dead()


def test_async_inference_keeps_commanding_under_injected_latency(graph, checkpoints):
    """inference: async with 50 ms injected latency (the tiny chunk lasts 133 ms): the tick
    publishes the stitched plan, and /diagnostics says so."""
    probe, start = graph
    group = start(controller(checkpoints['good'], inference='async', stitching='crossfade',
                             injected_latency=0.05, command='pick up the red cube'))
    Feed(probe)
    # (acting, or holding for a moment where the plan ran out on a loaded machine)
    acting = status(probe, lambda v: v['state'] != 'error' and int(v['actions']) > 30
                    and int(v.get('async_inferences', 0)) > 3, 60)
    assert acting is not None, group.processes[0].output()
    assert acting['inference'] == 'async' and acting['stitching'] == 'crossfade'
    assert int(acting['inference_errors']) == 0 and int(acting['worker_restarts']) == 0
    # (how often the plan runs out depends on this machine's load: measured in the benchmark)
    assert int(acting['faults']) == 0
    sent = probe.messages(REQUEST_TOPIC)
    assert len(sent) > 30 and all(np.all(np.isfinite(m.points[0].positions)) for m in sent)
    log = group.processes[0].output(20000)
    assert 'asynchronous inference: crossfade stitching' in log and '50 ms injected latency' in log
    group.stop()
    bad = start(controller(checkpoints['good'], inference='sometimes'))
    error = status(probe, lambda v: v['state'] == 'error', 60)
    assert error is not None and 'inference must be sync or async' in error['message'], \
        bad.processes[0].output()


def test_the_controller_is_a_managed_lifecycle_node(graph, checkpoints):
    """With autostart off it holds, unconfigured (no checkpoint loaded), until configured (the
    checkpoint is loaded and checked) and activated; deactivated, it holds again."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    probe, start = graph
    group = start(controller(checkpoints['good'], command='pick up the red cube', autostart=False))
    node = group.processes[0]
    feed = Feed(probe)
    idle = status(probe, lambda v: 'lifecycle state unconfigured' in v['hold_reason'], 60)
    assert idle is not None and idle['state'] == 'holding', node.output()
    assert 'loaded' not in node.output(20000)

    def change(transition: int) -> bool:
        response = probe.call(ChangeState, '/vla_controller/change_state',
                              ChangeState.Request(transition=Transition(id=transition)), 60)
        return response is not None and response.success

    assert change(Transition.TRANSITION_CONFIGURE), node.output()
    assert 'loaded' in node.output(20000)
    assert status(probe, lambda v: 'lifecycle state inactive' in v['hold_reason']) is not None
    assert change(Transition.TRANSITION_ACTIVATE), node.output()
    acting = status(probe, lambda v: v['state'] == 'active' and int(v['actions']) > 5, 30)
    assert acting is not None, node.output()
    assert change(Transition.TRANSITION_DEACTIVATE), node.output()
    held = status(probe, lambda v: 'lifecycle state inactive' in v['hold_reason'])
    assert held is not None and held['state'] == 'holding', node.output()
    # the hold that ended the acting: at the measured position
    np.testing.assert_allclose(probe.messages(REQUEST_TOPIC)[-1].points[0].positions,
                               feed.position, atol=1e-9)
    assert not group.dead()


def test_plan_points_send_the_plan_as_one_trajectory_the_gate_forwards_and_the_arm_follows(
        graph, checkpoints):
    """inference async, plan_points 3: each command is the action one tick ahead and the plan's
    next (up to) 3 actions a tick apart; the gate forwards the multi-point trajectory and the
    simulated arm follows it."""
    from vla_common.messages import to_seconds
    probe, start = graph
    sim = [dataclasses.replace(s, parameters={**s.parameters, 'image_size': SIZE})
           for s in robot_nodes({'use_sim': True})]
    ctl = dataclasses.replace(controller(checkpoints['long'], command='pick up the red cube',
                                         inference='async', plan_points=3), remappings=())
    group = start(*sim, *safety_nodes({}), ctl)
    probe.subscribe(JointTrajectory, ROBOT_COMMAND_TOPIC)
    probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
    acting = status(probe, lambda v: v['state'] != 'error' and int(v['actions']) > 30, 90)
    assert acting is not None, '\n'.join(p.output() for p in group.processes)
    tick = 1 / 30
    requests = probe.messages(REQUEST_TOPIC)
    assert max(len(m.points) for m in requests) == 4, [len(m.points) for m in requests]
    for msg in requests:
        times = [to_seconds(p.time_from_start) for p in msg.points]
        assert times == pytest.approx([tick * (k + 1) for k in range(len(times))], abs=1e-6)
    forwarded = [m for m in probe.messages(ROBOT_COMMAND_TOPIC) if len(m.points) == 4]
    assert forwarded, 'the gate forwarded no multi-point trajectory'
    for msg in forwarded:
        times = [to_seconds(p.time_from_start) for p in msg.points]
        assert all(b > a for a, b in zip(times, times[1:])) and times[0] > 0
        assert all(np.all(np.isfinite(p.positions)) for p in msg.points)
    states = probe.messages('/joint_states')
    moved = np.abs(np.array(states[-1].position) - np.array(states[0].position)).max()
    assert moved > 1e-3, 'the arm did not move'
    assert int(acting['faults']) == 0 and not group.dead()
