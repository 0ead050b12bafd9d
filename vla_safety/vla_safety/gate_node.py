"""``ros2 run vla_safety command_gate``: the only path from command sources to the robot.

Subscribes the requested commands on ``/vla/command`` (teleop, controller, scripted expert),
checks them (unknown, missing or repeated joints, NaN/inf, bad times: refused and counted),
reorders them to the robot's joint order, clips every target into the joint bounds, limits the
change per control tick to ``max_velocity`` and forwards the result on
``/joint_trajectory_controller/joint_trajectory``.

While the latched ``/emergency_stop`` carries a reason it forwards nothing except one command
that holds the robot where it is.  With ``require_monitor`` it forwards nothing until the safety
monitor has said that no stop is latched (an empty ``/emergency_stop``), so a robot without a
running monitor does not move.
"""
from __future__ import annotations

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_safety.rules import (Fault, FaultLog, SafetyLimits, check_command, check_times,
                              clip_to_bounds, joint_state_arrays, limit_trajectory,
                              sample_trajectory, to_robot_order)

#: the latched e-stop topic: transient-local so late joiners get the current state
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     reliability=ReliabilityPolicy.RELIABLE)


def seconds(duration: Duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


def duration(value: float) -> Duration:
    sec = int(value)
    return Duration(sec=sec, nanosec=int(round((value - sec) * 1e9)) % 1_000_000_000)


def trajectory_msg(joint_names: list[str], times: np.ndarray, positions: np.ndarray,
                   stamp: TimeMsg | None = None) -> JointTrajectory:
    """A JointTrajectory that starts at ``stamp`` (ros2_control: zero or now = at once).

    The gate stamps with the time it forwards, so a robot (the simulator) can tell a command
    sent before its last reset from a fresh one.
    """
    msg = JointTrajectory()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.joint_names = list(joint_names)
    msg.points = [JointTrajectoryPoint(positions=row.tolist(), time_from_start=duration(float(t)))
                  for t, row in zip(times, positions)]
    return msg


class CommandGate(Node):
    def __init__(self) -> None:
        super().__init__('command_gate')
        self.declare_parameter('joint_names', ['joint1', 'joint2', 'joint3', 'joint4', 'joint5',
                                               'joint6', 'gripper'])
        names = list(self.get_parameter('joint_names').value)
        # The course's JOINT_BOUNDS (robot.yaml sets the same values for every node).
        self.declare_parameter('joint_lower', [-3.14, -1.57, -2.5, -3.14, -2.0, -3.14, 0.0][:len(names)])
        self.declare_parameter('joint_upper', [3.14, 1.57, 2.5, 3.14, 2.0, 3.14, 0.08][:len(names)])
        self.declare_parameter('max_velocity', [2.0] * len(names))
        self.declare_parameter('rate', 30.0)
        self.declare_parameter('require_monitor', True)
        self.declare_parameter('reanchor_time', 0.15)
        self.declare_parameter('jump_time', 0.1)
        self.declare_parameter('hold_time', 1.0 / 30.0)
        self.declare_parameter('input_topic', '/vla/command')
        self.declare_parameter('output_topic', '/joint_trajectory_controller/joint_trajectory')

        p = self.get_parameter
        self.limits = SafetyLimits.from_values(names, p('joint_lower').value, p('joint_upper').value,
                                               p('max_velocity').value)
        self.tick = 1.0 / float(p('rate').value)
        self.require_monitor = bool(p('require_monitor').value)
        self.reanchor = self.limits.max_velocity * float(p('reanchor_time').value)
        self.jump = self.limits.max_velocity * float(p('jump_time').value)
        self.hold_time = float(p('hold_time').value)
        if not self.tick > 0 or not self.hold_time >= 0:
            raise ValueError(f'rate must be > 0 and hold_time >= 0, got rate {p("rate").value}, '
                             f'hold_time {self.hold_time}')

        self.q: np.ndarray | None = None  # latest measured positions, robot order
        self.estop: str | None = None  # None: not heard yet; '': cleared; text: latched reason
        # the last forwarded trajectory: start positions, times, points, when (node clock, s)
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self.faults = FaultLog()
        self.forwarded = self.clipped = self.rate_limited = self.blocked = 0
        self.reanchored = self.jumps = self.holds = self.estops = 0

        self.out_pub = self.create_publisher(JointTrajectory, str(p('output_topic').value), 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(JointTrajectory, str(p('input_topic').value), self._on_command, 10)
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data)
        self.create_subscription(String, '/emergency_stop', self._on_estop, LATCHED)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f'gating {p("input_topic").value} -> {p("output_topic").value} for {list(names)}: '
            f'bounds {self.limits.lower.tolist()} .. {self.limits.upper.tolist()}, '
            f'max speed {self.limits.max_velocity.tolist()} per s'
            + (', waiting for the safety monitor' if self.require_monitor else ''))

    # -- inputs ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _fault(self, fault: Fault) -> None:
        """Count a refused input; log each kind of fault once (the counts go to /diagnostics)."""
        if self.faults.add(fault):
            self.get_logger().warning(f'refused: {fault.reason} (further {fault.kind!r} faults '
                                      'are counted in /diagnostics, not logged)')

    def _on_joint_state(self, msg: JointState) -> None:
        arrays = joint_state_arrays(msg.name, msg.position, msg.velocity, self.limits)
        if isinstance(arrays, Fault):
            self._fault(arrays)
            return
        jumped = self.q is not None and np.any(np.abs(arrays[0] - self.q) > self.jump)
        self.q = arrays[0]
        if jumped:
            # The robot was moved, not driven (a simulator reset, a hand-guided arm): hold it
            # where it is now, so that a command forwarded just before we saw the jump (aimed
            # at where the robot was) is superseded at once, and rate-limit from here on.
            self.jumps += 1
            if self.last is not None and not self.estop:
                self.last = None
                self._hold()

    def _on_estop(self, msg: String) -> None:
        reason = msg.data.strip()
        if reason and not self.estop:
            self.estops += 1
            self.get_logger().error(f'emergency stop: {reason}; holding the robot and forwarding '
                                    'nothing until it is reset')
            self._hold()
        elif not reason and self.estop:
            self.get_logger().warning('emergency stop cleared: forwarding commands again')
            self.last = None  # the robot holds where it is: rate-limit from there
        elif not reason and self.estop is None:
            self.get_logger().info('safety monitor reports no emergency stop: forwarding commands')
        self.estop = reason

    def _on_command(self, msg: JointTrajectory) -> None:
        if self.estop or (self.estop is None and self.require_monitor):
            self.blocked += 1
            return
        rows = [list(pt.positions) for pt in msg.points]
        fault = check_command(msg.joint_names, rows, self.limits)
        times = np.array([seconds(pt.time_from_start) for pt in msg.points])
        fault = fault or check_times(times)
        if fault is not None:
            self._fault(fault)
            return
        now = self._now()
        reference = self._reference(now)
        if reference is None:
            self._fault(Fault('no joint state', 'no /joint_states received yet: cannot '
                              'rate-limit a command without knowing where the robot is'))
            return
        targets, outside = clip_to_bounds(to_robot_order(msg.joint_names, rows, self.limits),
                                          self.limits)
        targets, limited = limit_trajectory(reference, times, targets, self.limits.max_velocity,
                                            self.tick)
        self.clipped += bool(outside.any())
        self.rate_limited += limited
        self._forward(reference, times, targets, now)

    # -- outputs --------------------------------------------------------------------------------
    def _reference(self, now: float) -> np.ndarray | None:
        """Where the robot is commanded to be now: the last forwarded trajectory sampled at
        ``now``, or the measured position when there is none (start-up, after a stop or a jump
        of the measured state); a joint far from its command (blocked, pushed) is re-anchored
        to where it is."""
        if self.last is None:
            return None if self.q is None else self.q.copy()
        start, times, points, sent = self.last
        reference = sample_trajectory(start, times, points, now - sent)
        if self.q is not None:
            far = np.abs(reference - self.q) > self.reanchor
            if far.any():
                self.reanchored += 1
                reference[far] = self.q[far]
        return reference

    def _forward(self, start: np.ndarray, times: np.ndarray, points: np.ndarray, now: float) -> None:
        self.out_pub.publish(trajectory_msg(list(self.limits.joint_names), times, points,
                                            self.get_clock().now().to_msg()))
        self.last = (start, times, points, now)
        self.forwarded += 1

    def _hold(self) -> None:
        """One command that holds the robot at its measured position (or its current target)."""
        now = self._now()
        position = self.q if self.q is not None else (
            None if self.last is None else self._reference(now))
        if position is None:
            self.get_logger().warning('no joint state and no command yet: nothing to hold')
            return
        position, _ = clip_to_bounds(position, self.limits)
        self._forward(position, np.array([self.hold_time]), position[None], now)
        self.holds += 1

    def _publish_diagnostics(self) -> None:
        if self.estop:
            level, message = DiagnosticStatus.ERROR, f'emergency stop: {self.estop}'
        elif self.estop is None and self.require_monitor:
            level, message = DiagnosticStatus.WARN, 'waiting for the safety monitor (/emergency_stop)'
        elif self.q is None:
            level, message = DiagnosticStatus.WARN, 'no /joint_states yet'
        else:
            level, message = DiagnosticStatus.OK, 'forwarding'
        status = DiagnosticStatus(level=level, name='vla_safety: command_gate', message=message,
                                  hardware_id='command_gate')
        values = [('forwarded', self.forwarded), ('clipped', self.clipped),
                  ('rate_limited', self.rate_limited), ('reanchored', self.reanchored), ('state_jumps', self.jumps),
                  ('blocked', self.blocked), ('holds', self.holds), ('estops', self.estops),
                  ('refused', self.faults.total)]
        values += [(f'refused: {kind}', count) for kind, count in self.faults.counts.items()]
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = CommandGate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if rclpy.ok():
                node._hold()  # fail safe: the robot holds when its gate goes away
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
