"""What the fault-injection tests share: the robot and safety configuration they run with, a
robot that follows the gate's output, and the checks of what reached it
(``test_fault_injection*.py``)."""
import dataclasses
import math
import time

import numpy as np
import yaml
from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_bringup.scenarios import config_file
from vla_common.launching import NodeProcess, NodeSpec
from vla_common.testing import GraphProbe, wait_for
from vla_safety.rules import sample_trajectory

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
        self.history: list[tuple[float, np.ndarray]] = []  # (node time, where it was)
        probe.subscribe(JointTrajectory, topic, on_message=self.on_command)
        probe.timer(0.01, self.tick)

    def clock(self) -> float:
        return self.probe.node.get_clock().now().nanoseconds * 1e-9

    def on_command(self, msg) -> None:
        self.trajectory = (self.q.copy(), np.array([seconds(p.time_from_start) for p in msg.points]),
                           np.array([p.positions for p in msg.points]), self.clock())

    def position_at(self, t: float) -> np.ndarray:
        """Where the robot was at node time ``t`` (linear between its ticks)."""
        history = list(self.history)
        times = np.array([h[0] for h in history])
        positions = np.array([h[1] for h in history])
        return np.array([np.interp(t, times, positions[:, j]) for j in range(len(JOINTS))])

    def tick(self) -> None:
        # one instant for the motion and the stamp, so the monitor's velocity estimate is exact
        now = self.clock()
        dt, self.last = now - self.last, now
        if self.trajectory is not None:
            start, times, points, received = self.trajectory
            target = sample_trajectory(start, times, points, now - received)
            self.q += np.clip(target - self.q, -self.speed * dt, self.speed * dt)
        self.history.append((now, self.q.copy()))
        if not self.publishing:
            return
        msg = JointState(name=list(JOINTS), position=list(self.override or self.q.tolist()))
        msg.header.stamp = TimeMsg(sec=int(now), nanosec=int((now % 1.0) * 1e9))
        self.probe.publish(JointState, self.states, msg, qos_profile_sensor_data)


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


def is_stop(msg) -> bool:
    """A stop of the gate (a controlled stop or a one-point hold), not a forwarded command
    (the tests' commands have time_from_start 0; one with more is checked as a stop too)."""
    return len(msg.points) > 1 or seconds(msg.points[0].time_from_start) > 1e-6


def check_path(received, start=None, robot=None):
    """What reached the robot is finite, inside the bounds (or on the way back from where the
    robot was) and no faster than max_velocity over any window, plus one tick of credit.

    With the ``robot`` that received it (a :class:`FollowingRobot`), a stop of the gate starts
    a new path: the gate brakes from where the robot *is* (its measurement moved on,
    docs/safety.md "Where a stop starts"), not from where it was commanded to be, and a robot
    lags its command (by the transport latency x its speed: 0.07 rad under load), so a stop
    may lie behind the commanded path by that lag.  Its first point must be within one tick
    plus its own time of the commanded path or of where the robot really was at the stop's
    stamp, per joint; the windows are checked from there on.  (The gate's clock is the
    robot's: no sim time.)"""
    stamps, points, segments = [], [], []
    segment = 0
    for _, msg in received:
        stamp = seconds(msg.header.stamp)
        # as a JTC: a new trajectory replaces the points of the old one not yet due
        keep = [k for k, due in enumerate(stamps) if due <= stamp]
        stamps, points = [stamps[k] for k in keep], [points[k] for k in keep]
        segments = [segments[k] for k in keep]
        if robot is not None and stamps and is_stop(msg):
            first = np.array(msg.points[0].positions, dtype=float)
            allowed = VMAX * (seconds(msg.points[0].time_from_start) + TICK) + 1e-6
            last = int(np.argmax(stamps))
            commanded = np.array(points[last], dtype=float)  # held until this stop
            actual = robot.position_at(stamp)
            ok = (np.abs(first - commanded) <= allowed) | (np.abs(first - actual) <= allowed)
            assert np.all(ok), ('a stop starts neither on the commanded path nor where the robot '
                                'was', stamp, first.tolist(), commanded.tolist(), actual.tolist())
            segment += 1
        for p in msg.points:
            stamps.append(stamp + seconds(p.time_from_start))
            points.append(p.positions)
            segments.append(segment)
    points = np.array(points, dtype=float).reshape(-1, len(JOINTS))
    assert np.all(np.isfinite(points)), points
    low = LOWER if start is None else np.minimum(LOWER, start)
    high = UPPER if start is None else np.maximum(UPPER, start)
    assert np.all(points >= low - 1e-9) and np.all(points <= high + 1e-9), points
    stamps, segments = np.array(stamps), np.array(segments, dtype=int)
    order = np.argsort(stamps, kind='stable')
    stamps, points, segments = stamps[order], points[order], segments[order]
    for i in range(len(points)):
        same = segments[i:] == segments[i]  # a stop's path is checked from where it starts
        moved = np.abs(points[i:] - points[i])[same]
        allowed = VMAX * (stamps[i:, None] - stamps[i] + TICK)[same] + 1e-6
        assert np.all(moved <= allowed), (i, moved.max(), stamps[i:i + 4] - stamps[i],
                                          points[i:i + 4, 0])
    return stamps, points


def latched(probe) -> bool:
    msgs = probe.messages('/emergency_stop')
    return bool(msgs and msgs[-1].data)


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
