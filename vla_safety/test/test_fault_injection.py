"""Fault injection into a running safety layer: the real safety_monitor and command_gate
processes (robot.yaml + safety.yaml) over real DDS.  The test plays a robot that follows the
gate's output at a bounded speed (publishing /joint_states without velocities, so the monitor
estimates them), command sources and strangers.

For every fault it checks what reached the robot (never NaN, never beyond the bounds except on
the way back from a measured position that was already beyond them, never faster than the
speed limit by more than one tick), whether the stop latched, and that every node kept running.
One graph serves the module; each test leaves the stop reset.
"""
import dataclasses
import math
import os
import signal
import threading
import time

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_bringup.scenarios import config_file
from vla_common.launching import NodeGroup, NodeProcess, NodeSpec
from vla_common.qos import LATCHED
from vla_common.testing import GraphProbe, wait_for
from vla_safety.rules import sample_trajectory

pytestmark = pytest.mark.ros

OUT = '/joint_trajectory_controller/joint_trajectory'
ROBOT = yaml.safe_load(open(config_file('robot.yaml')))['/**']['ros__parameters']
GATE = yaml.safe_load(open(config_file('safety.yaml')))['command_gate']['ros__parameters']
JOINTS = ROBOT['joint_names']
LOWER, UPPER = np.array(ROBOT['joint_lower']), np.array(ROBOT['joint_upper'])
VMAX = np.array(GATE['max_velocity'])
TICK = 1.0 / GATE['rate']
FILES = (config_file('robot.yaml'), config_file('safety.yaml'))
MONITOR = NodeSpec('vla_safety', 'safety_monitor', 'vla_safety.monitor_node', 'safety_monitor',
                   param_files=FILES)


def seconds(msg) -> float:
    return msg.sec + msg.nanosec * 1e-9


def command(target, t0=0.0, names=JOINTS):
    sec = math.floor(t0)
    point = JointTrajectoryPoint(positions=[float(x) for x in target],
                                 time_from_start=Duration(sec=sec, nanosec=int((t0 - sec) * 1e9)))
    return JointTrajectory(joint_names=list(names), points=[point])


class FollowingRobot:
    """Follows the gate's output (linear interpolation, as a JTC) at no more than ``speed``,
    and publishes /joint_states at 100 Hz, stamped, without velocities."""

    def __init__(self, probe: GraphProbe, speed: float = 1.7, topic: str = OUT,
                 states: str = '/joint_states') -> None:
        self.probe, self.speed, self.states = probe, speed, states
        self.q = np.zeros(len(JOINTS))
        self.override: list | None = None  # positions to publish instead (faults)
        self.publishing = True
        self.trajectory = None  # (start, times, points, received)
        self.last = self.clock()
        probe.subscribe(JointTrajectory, topic, on_message=self.on_command)
        probe.timer(0.01, self.tick)

    def clock(self) -> float:
        return self.probe.node.get_clock().now().nanoseconds * 1e-9

    def on_command(self, msg) -> None:
        self.trajectory = (self.q.copy(), np.array([seconds(p.time_from_start) for p in msg.points]),
                           np.array([p.positions for p in msg.points]), self.clock())

    def tick(self) -> None:
        # one instant for the motion and the stamp, so the monitor's velocity estimate is exact
        now = self.clock()
        dt, self.last = now - self.last, now
        if self.trajectory is not None:
            start, times, points, received = self.trajectory
            target = sample_trajectory(start, times, points, now - received)
            self.q += np.clip(target - self.q, -self.speed * dt, self.speed * dt)
        if not self.publishing:
            return
        msg = JointState(name=list(JOINTS), position=list(self.override or self.q.tolist()))
        msg.header.stamp = TimeMsg(sec=int(now), nanosec=int((now % 1.0) * 1e9))
        self.probe.publish(JointState, self.states, msg, qos_profile_sensor_data)


@pytest.fixture(scope='module')
def graph():
    gate = NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate',
                    param_files=FILES)
    group = NodeGroup([MONITOR, gate]).start()
    probe = GraphProbe('fault_injection_probe')
    try:
        robot = FollowingRobot(probe)
        probe.subscribe(String, '/emergency_stop', LATCHED)
        probe.publisher(JointTrajectory, '/vla/command')
        probe.publisher(String, '/emergency_stop', LATCHED)
        up = wait_for(lambda: probe.publishers['/vla/command'].get_subscription_count() > 0
                      and probe.messages('/emergency_stop'), 30.0)
        assert up, 'gate/monitor did not come up:\n' + output(group)
        assert wait_for(lambda: send(probe, command(robot.q)) is not None, 30.0,
                        interval=0.3), output(group)
        yield probe, robot, group
    finally:
        probe.close()
        group.stop()


def output(group) -> str:
    return '\n'.join(f'--- {p.spec.name}\n{p.output()}' for p in group.processes)


def send(probe, msg, timeout=0.5, topics=('/vla/command', OUT)):
    """Publish one command; the gate's next output or None."""
    since = time.monotonic()
    probe.publish(JointTrajectory, topics[0], msg)
    return probe.wait_for_message(topics[1], timeout=timeout, since=since)


def forwarded(probe, msg, timeout=5.0, topics=('/vla/command', OUT)):
    """Publish ``msg`` until the gate forwards it (a loaded machine may make the joint
    state or the heartbeat late for a moment, and the gate then holds, as it should)."""
    found = []
    wait_for(lambda: found.append(send(probe, msg, 0.3, topics)) or found[-1] is not None,
             timeout, interval=0.05)
    return found[-1] if found else None


def outputs(probe, since, topic=OUT):
    return [(t, m) for t, m in probe.stamped(topic) if t >= since]


def check_path(received, start=None):
    """What reached the robot is finite, inside the bounds (or on the way back from where the
    robot was) and no faster than max_velocity over any window, plus one tick of credit."""
    stamps, points = [], []
    for _, msg in received:
        stamp = seconds(msg.header.stamp)
        # as a JTC: a new trajectory replaces the points of the old one not yet due
        keep = [k for k, due in enumerate(stamps) if due <= stamp]
        stamps, points = [stamps[k] for k in keep], [points[k] for k in keep]
        for p in msg.points:
            stamps.append(stamp + seconds(p.time_from_start))
            points.append(p.positions)
    points = np.array(points, dtype=float).reshape(-1, len(JOINTS))
    assert np.all(np.isfinite(points)), points
    low = LOWER if start is None else np.minimum(LOWER, start)
    high = UPPER if start is None else np.maximum(UPPER, start)
    assert np.all(points >= low - 1e-9) and np.all(points <= high + 1e-9), points
    stamps = np.array(stamps)
    order = np.argsort(stamps, kind='stable')
    stamps, points = stamps[order], points[order]
    for i in range(len(points)):
        moved = np.abs(points[i:] - points[i])
        allowed = VMAX * (stamps[i:, None] - stamps[i] + TICK) + 1e-6
        assert np.all(moved <= allowed), (i, moved.max(), stamps[i:i + 4] - stamps[i],
                                          points[i:i + 4, 0])
    return stamps, points


def latched(probe) -> bool:
    msgs = probe.messages('/emergency_stop')
    return bool(msgs and msgs[-1].data)


@pytest.fixture
def running(graph):
    """The module's graph with no stop latched (a failed test must not fail the next)."""
    probe, robot, group = graph
    robot.override, robot.publishing = None, True
    if latched(probe):
        reset(probe, robot, group)
    forwarded(probe, command(robot.q))  # the robot at rest where it is
    wait_for(lambda: False, 0.2)
    return graph


def reset(probe, robot, group, timeout=10.0):
    """Reset the stop (the fault is gone) and wait until the gate forwards again."""
    def attempt():
        answer = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request(), timeout=2.0)
        return answer is not None and answer.success and forwarded(probe, command(robot.q), 1.0) is not None
    assert wait_for(attempt, timeout, interval=0.3), output(group)


def alive(group):
    assert not group.dead(), output(group)


@pytest.mark.parametrize('rate_hz, seconds_', [(1, 2.0), (30, 1.0), (100, 1.0)])
def test_command_rates_never_move_the_robot_faster_than_the_limit(running, rate_hz, seconds_):
    probe, robot, group = running
    since = time.monotonic()
    target = np.clip(robot.q + 1.0 * np.where(robot.q[0] > 0, -1, 1), LOWER, UPPER)
    deadline = since + seconds_
    while time.monotonic() < deadline:
        probe.publish(JointTrajectory, '/vla/command', command(target))
        time.sleep(1.0 / rate_hz)
    wait_for(lambda: False, 0.2)
    received = outputs(probe, since)
    # (a loaded machine makes joint states late now and then: the gate holds, as it should)
    assert len(received) >= min(2, int(seconds_ * rate_hz)), output(group)
    check_path(received)
    assert not latched(probe), output(group)
    alive(group)


def test_a_1000_hz_burst_moves_the_robot_no_faster_than_the_limit(running):
    probe, robot, group = running
    since = time.monotonic()
    target = np.clip(robot.q + np.where(robot.q[0] > 0, -1.0, 1.0), LOWER, UPPER)
    for _ in range(300):
        probe.publish(JointTrajectory, '/vla/command', command(target))
        time.sleep(0.001)
    wait_for(lambda: False, 0.3)
    received = outputs(probe, since)
    assert received, output(group)
    stamps, points = check_path(received)
    moved = np.abs(points[-1] - points[0])[0]
    span = stamps[-1] - stamps[0]
    assert moved <= VMAX[0] * (span + TICK) + 1e-6, (moved, span)
    assert not latched(probe), output(group)
    alive(group)


def test_time_from_start_zero_negative_huge_and_joint_names(running):
    probe, robot, group = running
    since = time.monotonic()
    target = robot.q + 0.01  # less than one tick's motion of every joint
    assert forwarded(probe, command(target, t0=0.0)) is not None
    negative = command(target)
    negative.points[0].time_from_start = Duration(sec=-1, nanosec=0)
    assert send(probe, negative) is None
    huge = forwarded(probe, command(target, t0=1e6))
    assert huge is not None and huge.points[0].time_from_start.sec == 1_000_000
    reordered = forwarded(probe, command(list(reversed(target.tolist())),
                                         names=list(reversed(JOINTS))))
    assert reordered is not None and list(reordered.joint_names) == JOINTS
    np.testing.assert_allclose(reordered.points[0].positions, np.clip(target, LOWER, UPPER), atol=1e-6)
    duplicated = command(np.append(target, 0.0), names=JOINTS + [JOINTS[0]])
    assert send(probe, duplicated) is None
    check_path(outputs(probe, since))
    assert not latched(probe), output(group)
    alive(group)


def test_non_finite_joint_states_latch_and_the_robot_gets_a_finite_hold(running):
    probe, robot, group = running
    for bad in (math.nan, math.inf):
        since = time.monotonic()
        robot.override = [bad] + robot.q.tolist()[1:]
        assert wait_for(lambda: latched(probe), 5.0), output(group)
        robot.override = None
        wait_for(lambda: False, 0.3)
        received = outputs(probe, since)
        assert received, 'no hold reached the robot'
        check_path(received)
        assert send(probe, command(robot.q + 0.01)) is None  # latched: nothing passes
        reset(probe, robot, group)
    alive(group)


def test_out_of_range_joint_state_stops_without_a_jump(running):
    probe, robot, group = running
    since = time.monotonic()
    at_rest = robot.q.copy()
    beyond = robot.q.copy()
    beyond[0] = 3.6  # past the monitor's 3.5 limit and the gate's 2.9 bound
    robot.override = beyond.tolist()
    assert wait_for(lambda: latched(probe), 5.0), output(group)
    wait_for(lambda: False, 0.3)
    answer = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request())
    assert answer is not None and not answer.success and 'persists' in answer.message
    received = outputs(probe, since)
    robot.override = None
    assert received
    # each stop starts where the robot is measured and comes back within the bounds at no more
    # than the speed limit: never a jump, never further out
    for _, msg in received:
        if all(np.allclose(p.positions, at_rest, atol=1e-9) for p in msg.points):
            # a hold where the robot really is, sent before the gate took the faked state (a
            # heartbeat made late by a busy machine, or the monitor's stop ahead of that state)
            continue
        path = np.vstack([beyond] + [p.positions for p in msg.points])
        assert np.all(np.abs(np.diff(path, axis=0)) <= VMAX * TICK + 1e-6), path
        assert np.all(path <= np.maximum(UPPER, beyond) + 1e-9) and np.all(path >= LOWER - 1e-9)
        assert np.all(np.isfinite(path))
    assert received[-1][1].points[-1].positions[0] == pytest.approx(UPPER[0])
    reset(probe, robot, group)
    alive(group)


def test_joint_states_that_stop_hold_the_robot_and_latch_the_watchdog(running):
    probe, robot, group = running
    robot.publishing = False
    since = time.monotonic()
    held_at = robot.q.copy()
    wait_for(lambda: False, 0.25)  # stale for the gate (0.15 s), not yet for the monitor (0.5 s)
    for _ in range(5):
        send(probe, command(held_at + 0.05), 0.05)
    assert wait_for(lambda: latched(probe), 5.0)
    assert 'no usable /joint_states' in probe.messages('/emergency_stop')[-1].data
    assert wait_for(lambda: outputs(probe, since), 5.0), 'no hold came with the stop'
    received = outputs(probe, since)
    # the commands never passed: the robot got holds at its last commanded position only
    assert received and all(np.allclose(m.points[-1].positions, held_at, atol=0.01)
                            for _, m in received), (held_at, [[p.positions for p in m.points]
                                                              for _, m in received])
    check_path(outputs(probe, since))
    robot.publishing = True
    reset(probe, robot, group)
    alive(group)


def test_stuttering_late_joint_states_hold_without_latching(running):
    probe, robot, group = running
    since = time.monotonic()
    target = np.clip(robot.q + 0.3, LOWER, UPPER)
    for _ in range(3):
        robot.publishing = False
        for _ in range(6):  # 0.2 s of silence: stale for the gate
            probe.publish(JointTrajectory, '/vla/command', command(target, TICK))
            time.sleep(TICK)
        robot.publishing = True
        for _ in range(6):
            probe.publish(JointTrajectory, '/vla/command', command(target, TICK))
            time.sleep(TICK)
    check_path(outputs(probe, since))
    assert not latched(probe), output(group)
    alive(group)


def test_a_strangers_empty_estop_clears_nothing(running):
    probe, robot, group = running
    answer = probe.call(Trigger, '/emergency_stop/trigger', Trigger.Request())
    assert answer is not None and answer.success
    assert wait_for(lambda: latched(probe), 5.0)
    stranger = GraphProbe('stranger')
    try:
        stranger.publisher(String, '/emergency_stop', LATCHED)
        stranger.wait_for_subscribers(['/emergency_stop'])
        stranger.publish(String, '/emergency_stop', String(data=''), LATCHED)
        wait_for(lambda: False, 0.3)
    finally:
        stranger.close()
    assert send(probe, command(robot.q + 0.01)) is None, 'a bare empty string cleared the stop'
    reset(probe, robot, group)
    alive(group)


def is_stop(msg) -> bool:
    """A stop of the gate (a controlled stop or a one-point hold), not a forwarded command
    (the flood below sends commands with time_from_start 0)."""
    return len(msg.points) > 1 or seconds(msg.points[0].time_from_start) > 1e-6


def test_a_command_flood_while_the_stop_latches_forwards_nothing_after_the_stop(running):
    probe, robot, group = running
    flooding = threading.Event()
    flooding.set()

    def flood():
        while flooding.is_set():
            probe.publish(JointTrajectory, '/vla/command', command(robot.q))  # ~1 kHz, due at once
            time.sleep(0.001)
    def late_heartbeats():
        return group.processes[1].output(max_chars=10 ** 8).count('safety heartbeat late')
    late = late_heartbeats()
    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        wait_for(lambda: False, 0.3)
        since = time.monotonic()
        answer = probe.call(Trigger, '/emergency_stop/trigger', Trigger.Request())
        assert answer is not None and answer.success
        assert wait_for(lambda: latched(probe), 5.0), output(group)
        wait_for(lambda: False, 0.5)  # the flood goes on
    finally:
        flooding.clear()
        thread.join(timeout=5.0)
    received = outputs(probe, since)
    kinds = ['stop' if is_stop(m) else 'command' for _, m in received]
    assert 'stop' in kinds, kinds
    # the robot gets the gate's stop, then nothing that moves it: a stop that is ready with a
    # command is taken first, and a latched gate forwards nothing
    if late_heartbeats() == late:
        after = kinds[kinds.index('stop'):]
        assert all(k == 'stop' for k in after), kinds
    else:
        # a busy machine made a heartbeat late: that hold (a stop too) may come before the
        # latch and commands resume after it; the latched gate still ends with its stop
        assert kinds[-1] == 'stop', kinds
    # (how many commands reached the robot after /emergency_stop reached this probe is timing,
    # not asserted: benchmarks/bench_estop.py counts them)
    check_path(received)
    reset(probe, robot, group)
    alive(group)


def test_monitor_killed_and_restarted_the_gate_holds_until_the_new_monitor_is_reset(running):
    probe, robot, group = running
    monitor = group.processes[0]
    since = time.monotonic()
    os.killpg(monitor.pid, signal.SIGKILL)
    assert wait_for(lambda: not monitor.alive(), 5.0)
    assert wait_for(lambda: outputs(probe, since), 5.0), 'the gate sent no hold ' + output(group)
    assert send(probe, command(robot.q + 0.01)) is None
    check_path(outputs(probe, since))
    # a restarted monitor starts "not stopped", yet the gate holds: it asks the new monitor to
    # latch, and only that monitor's reset clears it
    group.processes[0] = NodeProcess(MONITOR, monitor.env, str(monitor.log_path) + '.2').start()
    assert wait_for(lambda: 'command gate' in (probe.messages('/emergency_stop') or [String()])[-1].data,
                    30.0), output(group)
    assert send(probe, command(robot.q + 0.01)) is None
    reset(probe, robot, group)
    alive(group)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_gate_sends_its_hold_on_sigint_and_sigterm(sig):
    spec = NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate',
                    param_files=FILES, parameters={'require_monitor': False})
    # a graph of its own beside the module's (whose nodes may still run)
    ns = f'/signal_test_{int(sig)}'
    topics = (f'{ns}/command', f'{ns}/robot')
    spec = dataclasses.replace(
        spec, parameters={**spec.parameters, 'input_topic': topics[0], 'output_topic': topics[1]},
        remappings=tuple((t, ns + t) for t in ('/joint_states', '/emergency_stop',
                                               '/safety/heartbeat', '/safety/stop_request')))
    gate = NodeProcess(spec).start()
    probe = GraphProbe(f'signal_probe_{int(sig)}')
    try:
        robot = FollowingRobot(probe, topic=topics[1], states=f'{ns}/joint_states')
        probe.publisher(JointTrajectory, topics[0])
        assert forwarded(probe, command(robot.q + 0.01), 30.0, topics) is not None, gate.output()
        since = time.monotonic()
        os.killpg(gate.pid, sig)
        assert wait_for(lambda: not gate.alive(), 10.0), gate.output()
        assert gate.returncode == 0, gate.output()
        held = outputs(probe, since, topics[1])
        assert held, 'no hold reached the robot: ' + gate.output()
        assert 'controlled stop' in gate.output()
        check_path(held)
    finally:
        probe.close()
        gate.stop()


def private_gate(name: str, parameters: dict):
    """A gate of its own beside the module's graph: its topics under ``/<name>``."""
    spec = NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate',
                    param_files=FILES, parameters={'require_monitor': False})
    ns = f'/{name}'
    topics = (f'{ns}/command', f'{ns}/robot')
    spec = dataclasses.replace(
        spec, parameters={**spec.parameters, **parameters, 'input_topic': topics[0],
                          'output_topic': topics[1]},
        remappings=tuple((t, ns + t) for t in ('/joint_states', '/emergency_stop', '/clock',
                                               '/safety/heartbeat', '/safety/stop_request')))
    return NodeProcess(spec).start(), ns, topics


def test_sim_clock_jumping_back_holds_until_a_fresh_state_and_moves_nothing_back():
    gate, ns, topics = private_gate('clock_jump_test', {'use_sim_time': True})
    probe = GraphProbe('clock_jump_probe')
    sim = {'t': 100.0, 'offset': 0.0}  # the timer alone writes t, the test alone the offset

    def tick_clock():
        sim['t'] += 0.01
        now = sim['t'] + sim['offset']
        sec = math.floor(now)
        probe.publish(Clock, f'{ns}/clock', Clock(clock=TimeMsg(
            sec=sec, nanosec=int((now - sec) * 1e9))))
    try:
        probe.timer(0.01, tick_clock)
        robot = FollowingRobot(probe, topic=topics[1], states=f'{ns}/joint_states')
        probe.publisher(JointTrajectory, topics[0])
        assert forwarded(probe, command(robot.q), 30.0, topics) is not None, gate.output()
        target = np.clip(robot.q + 0.5, LOWER, UPPER)
        for _ in range(10):
            probe.publish(JointTrajectory, topics[0], command(target, TICK))
            time.sleep(TICK)
        jumped_from = sim['t']
        sim['offset'] = -50.0  # a simulator reset: the clock jumps back
        assert wait_for(lambda: 'clock jumped back' in gate.output(), 10.0), gate.output()
        since = time.monotonic()
        after = forwarded(probe, command(target, TICK), 10.0, topics)
        assert after is not None, gate.output()  # a fresh state came: it forwards again
        for _ in range(10):
            probe.publish(JointTrajectory, topics[0], command(target, TICK))
            time.sleep(TICK)
        wait_for(lambda: False, 0.1)
        received = outputs(probe, since, topics[1])
        # stamped in the new (earlier) time; from where the robot is, at no more than the limit
        assert received and all(seconds(m.header.stamp) < jumped_from - 40.0
                                for _, m in received), received
        check_path(received)
        assert gate.alive(), gate.output()
    finally:
        probe.close()
        gate.stop()


def test_operator_deadman_released_or_silent_holds_and_held_again_forwards():
    gate, ns, topics = private_gate('deadman_test', {'deadman_topic': '/operator/deadman',
                                                     'deadman_timeout': 0.3})
    probe = GraphProbe('deadman_probe')
    deadman = {'pressed': True, 'publishing': True}

    def press():
        if deadman['publishing']:
            probe.publish(Bool, '/operator/deadman', Bool(data=deadman['pressed']))
    try:
        probe.timer(0.05, press)
        robot = FollowingRobot(probe, topic=topics[1], states=f'{ns}/joint_states')
        probe.publisher(JointTrajectory, topics[0])
        assert forwarded(probe, command(robot.q + 0.01), 30.0, topics) is not None, gate.output()
        def count(text):
            return gate.output(max_chars=10 ** 6).count(text)
        for how in ('publishing', 'pressed'):  # silent, then released (false)
            holds = count('deadman released or silent: holding')
            deadman[how] = False
            assert wait_for(lambda: count('deadman released or silent: holding') > holds, 10.0), \
                gate.output()
            wait_for(lambda: False, 0.1)
            assert send(probe, command(robot.q + 0.01), 0.3, topics) is None, how
            deadman[how] = True
            assert forwarded(probe, command(robot.q + 0.01), 10.0, topics) is not None, how
        assert count('operator deadman held') >= 2, gate.output()
        assert gate.alive(), gate.output()
    finally:
        probe.close()
        gate.stop()
