"""command_gate + safety_monitor as real node processes; the test plays the robot (publishes
/joint_states) and the command source (/vla/command) over real DDS topics."""
import math

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_bringup.scenarios import config_file
from vla_common.launching import NodeGroup, NodeSpec
from vla_common.qos import LATCHED
from vla_common.testing import GraphProbe, wait_for

pytestmark = pytest.mark.ros

OUT = '/joint_trajectory_controller/joint_trajectory'
ROBOT = yaml.safe_load(open(config_file('robot.yaml')))['/**']['ros__parameters']
GATE = yaml.safe_load(open(config_file('safety.yaml')))['command_gate']['ros__parameters']
JOINTS = ROBOT['joint_names']
UPPER = np.array(ROBOT['joint_upper'])
TICK_STEP = np.array(GATE['max_velocity']) / GATE['rate']  # the most a target moves per tick
ACCEL = np.array(GATE['max_acceleration'])


def command(positions, times=(0.0,), names=JOINTS):
    msg = JointTrajectory(joint_names=list(names))
    for t, row in zip(times, positions):
        sec = int(t)
        msg.points.append(JointTrajectoryPoint(
            positions=[float(x) for x in row],
            time_from_start=Duration(sec=sec, nanosec=int((t - sec) * 1e9))))
    return msg


class Robot:
    """The test's stand-in for the robot driver: /joint_states at 30 Hz from ``q``, ``v``."""

    def __init__(self, probe: GraphProbe) -> None:
        self.probe, self.publishing = probe, True
        self.q, self.v, self.names = np.zeros(7), np.zeros(7), list(JOINTS)
        probe.timer(1.0 / 30.0, self.publish)

    def publish(self) -> None:
        if self.publishing:
            self.probe.publish(JointState, '/joint_states', JointState(
                name=self.names, position=self.q.tolist(), velocity=self.v.tolist()[:len(self.names)]),
                qos_profile_sensor_data)


@pytest.fixture(scope='module')
def graph():
    files = (config_file('robot.yaml'), config_file('safety.yaml'))
    specs = [NodeSpec('vla_safety', 'safety_monitor', 'vla_safety.monitor_node', 'safety_monitor',
                      param_files=files),
             NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate',
                      param_files=files)]
    group = NodeGroup(specs).start()
    probe = GraphProbe()
    try:
        probe.subscribe(JointTrajectory, OUT)
        probe.subscribe(String, '/emergency_stop', LATCHED)
        probe.subscribe(DiagnosticArray, '/diagnostics')
        robot = Robot(probe)
        probe.publisher(JointTrajectory, '/vla/command')
        ready = wait_for(lambda: probe.publishers['/vla/command'].get_subscription_count() > 0
                         and probe.messages('/emergency_stop'), 30.0)
        assert ready, 'gate/monitor did not come up:\n' + '\n'.join(p.output() for p in group.processes)
        # discovery is not symmetric: wait until the gate has a joint state and hears our commands
        warm = wait_for(lambda: forwarded_after(probe, command([[0.0] * 7]), timeout=0.5) is not None,
                        30.0)
        assert warm, 'the gate forwarded nothing:\n' + '\n'.join(p.output() for p in group.processes)
        yield probe, robot, group
    finally:
        probe.close()
        group.stop()


def forwarded_after(probe, msg, timeout=5.0):
    """Publish ``msg`` on /vla/command and return the gate's next output (or None)."""
    probe.clear(OUT)
    probe.publish(JointTrajectory, '/vla/command', msg)
    return probe.wait_for_message(OUT, timeout=timeout)


def diagnostics(probe, name, predicate, timeout=5.0):
    """The first /diagnostics status of ``name`` (from now on) whose values satisfy predicate."""
    probe.clear('/diagnostics')

    def match(msg):
        return any(s.name == name and predicate({kv.key: kv.value for kv in s.values})
                   for s in msg.status)
    return probe.wait_for_message('/diagnostics', match, timeout)


def alive(group):
    assert not group.dead(), '\n'.join(p.output() for p in group.dead())


def test_gate_clips_reorders_and_rate_limits(graph):
    probe, robot, group = graph
    robot.q[:] = 0.0
    wait_for(lambda: False, 0.2)
    # shuffled joint order, joint1 far beyond its bound, gripper below 0
    names = list(reversed(JOINTS))
    out = forwarded_after(probe, command([[-0.5, 0, 0, 0, 0, 0.01, 9.0]], names=names))
    assert out is not None, group.processes[1].output()
    assert list(out.joint_names) == JOINTS
    q = np.array(out.points[0].positions)
    # one control tick of motion from the measured zero pose: rate-limited, then bounds hold
    assert q[0] == pytest.approx(TICK_STEP[0]) and q[1] == pytest.approx(0.01)
    assert q[6] == pytest.approx(0.0)
    # a chunk with time_from_start filled: max speed over 1 s, then clipped to the bound
    robot.q[:] = 0.0
    out = forwarded_after(probe, command([[3.0] + [0] * 6, [5.0] + [0] * 6], times=(1.0, 2.0)))
    pts = [np.array(p.positions) for p in out.points]
    # 1 s at max speed from where the last command left it, plus at most one tick of credit
    assert GATE['max_velocity'][0] <= pts[0][0] <= GATE['max_velocity'][0] + 3 * TICK_STEP[0]
    assert pts[1][0] == pytest.approx(UPPER[0])
    assert out.points[1].time_from_start.sec == 2
    assert diagnostics(probe, 'vla_safety: command_gate',
                       lambda v: int(v['clipped']) >= 1 and int(v['rate_limited']) >= 2)


def test_bad_commands_are_refused_counted_and_the_gate_keeps_running(graph):
    probe, robot, group = graph
    robot.q[:] = 0.0
    bad = [command([[math.nan] + [0] * 6]),
           command([[0] * 7 + [0.1]], names=JOINTS + ['joint7']),
           command([[0] * 6], names=JOINTS[:6]),
           command([[0.0] * 7, [0.1] * 7], times=(0.5, 0.2)),
           JointTrajectory(joint_names=JOINTS)]
    for msg in bad:
        out = forwarded_after(probe, msg, timeout=0.5)
        # nothing, or a hold where the robot is (a late heartbeat on a loaded machine holds)
        assert out is None or np.allclose(out.points[-1].positions, robot.q, atol=1e-6), \
            group.processes[1].output()
    status = diagnostics(probe, 'vla_safety: command_gate',
                         lambda v: int(v.get('refused', 0)) >= len(bad))
    assert status is not None
    keys = {kv.key for s in status.status for kv in s.values}
    assert {'refused: non-finite target', 'refused: unknown joint', 'refused: missing joint',
            'refused: bad time', 'refused: no points'} <= keys
    alive(group)
    assert wait_for(lambda: forwarded_after(probe, command([[0.01] * 7]), 0.5) is not None, 10.0)


def test_limit_violation_latches_the_stop_blocks_commands_and_reset_restores(graph):
    probe, robot, group = graph
    robot.q[:], robot.v[:] = 0.1, 0.0
    wait_for(lambda: False, 0.2)
    probe.clear()
    robot.v[1] = 2.5  # joint2 faster than the 2.0 rad/s limit
    stop = probe.wait_for_message('/emergency_stop', lambda m: m.data != '')
    assert stop is not None and 'joint velocity limit: joint2' in stop.data
    hold = probe.wait_for_message(OUT)
    # a controlled stop: joint2 (reported at 2.5 rad/s) brakes within the acceleration limit,
    # the gripper (0.1, above its 0.08 bound) moves back at its speed limit, no jump
    assert hold is not None
    path = np.array([[0.1] * 7] + [p.positions for p in hold.points])
    assert np.all(np.abs(np.diff(path, axis=0)) <= TICK_STEP + 1e-9)
    speed = np.diff(path[:, 1]) * GATE['rate']
    assert np.all(np.abs(np.diff(np.concatenate([[GATE['max_velocity'][1]], speed])))
                  <= ACCEL[1] / GATE['rate'] + 1e-6)
    assert path[-1][6] == pytest.approx(UPPER[6]) and np.allclose(path[-1][[0, 2, 3, 4, 5]], 0.1)
    # nothing but that one hold reaches the robot
    for _ in range(5):
        probe.publish(JointTrajectory, '/vla/command', command([[0.2] * 7]))
    wait_for(lambda: False, 0.5)
    assert len(probe.messages(OUT)) == 1
    # the reset is refused while the violation persists, accepted once it has cleared
    answer = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request())
    assert answer is not None and not answer.success and 'persists' in answer.message
    robot.v[:] = 0.0
    wait_for(lambda: False, 0.2)
    answer = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request())
    assert answer.success, answer.message
    assert probe.wait_for_message('/emergency_stop', lambda m: m.data == '') is not None
    wait_for(lambda: False, 0.2)
    out = forwarded_after(probe, command([[0.12] * 6 + [0.05]]))
    assert out is not None and out.points[0].positions[0] == pytest.approx(0.12)
    assert 'reset by a call' in group.processes[0].output()


def test_malformed_joint_states_are_counted_and_the_watchdog_stops_the_robot(graph):
    probe, robot, group = graph
    robot.q[:], robot.v[:] = 0.0, 0.0
    wait_for(lambda: False, 0.2)
    probe.clear()
    robot.names = JOINTS[:5]  # missing joint6 and gripper: unusable
    stop = probe.wait_for_message('/emergency_stop', lambda m: m.data != '')
    assert stop is not None and 'no usable /joint_states' in stop.data
    alive(group)
    assert diagnostics(probe, 'vla_safety: safety_monitor',
                       lambda v: int(v['ignored_joint_states']) > 0) is not None
    answer = probe.call(Trigger, '/emergency_stop/reset', Trigger.Request())
    assert not answer.success and 'no usable /joint_states' in answer.message
    robot.names = list(JOINTS)
    wait_for(lambda: False, 0.3)
    assert probe.call(Trigger, '/emergency_stop/reset', Trigger.Request()).success
    # the gate forwards again once it has the reset's heartbeat and a fresh joint state
    assert wait_for(lambda: forwarded_after(probe, command([[0.0] * 7]), 0.5) is not None, 10.0), \
        group.processes[1].output()


def test_a_forward_takes_the_requests_stamp_when_the_gates_clock_lags_by_up_to_a_tick(graph):
    """On sim time /clock may reach the gate after a command answering the new tick: the forward
    carries the request's stamp (a lock-step simulator takes it as the answer), never one
    further ahead than a tick."""
    from builtin_interfaces.msg import Time
    probe, robot, group = graph
    robot.q[:] = 0.0
    wait_for(lambda: False, 0.2)

    def forward(ahead):
        msg = command([[0.0] * 7])
        now = probe.node.get_clock().now().nanoseconds * 1e-9 + ahead
        msg.header.stamp = Time(sec=int(now), nanosec=int((now - int(now)) * 1e9))
        out = forwarded_after(probe, msg)
        assert out is not None, group.processes[1].output()
        return out.header.stamp.sec + out.header.stamp.nanosec * 1e-9, now

    stamp, request = forward(0.02)  # within a tick (33 ms) ahead of the gate's clock
    assert stamp >= request - 1e-6  # (later only when the gate took > 20 ms to get to it)
    stamp, request = forward(5.0)  # far ahead: the gate's own clock
    assert stamp < request - 4.0
    alive(group)
