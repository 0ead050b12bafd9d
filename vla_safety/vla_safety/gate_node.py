"""``ros2 run vla_safety command_gate``: the only path from command sources to the robot.

Subscribes the requested commands on ``/vla/command`` (teleop, controller, scripted expert)
and forwards checked, reordered, clipped and rate-limited ones on
``/joint_trajectory_controller/joint_trajectory``.  It follows the safety monitor's heartbeat
(``/safety/heartbeat``) and holds the robot with a controlled stop, forwarding nothing, while a
stop is latched; only a reset of the monitor clears it.  The rules live in
:class:`vla_safety.gate.GateCore`; this node converts messages, parameters and timers.

Output stamps (``stamp_mode``): ``zero`` starts each trajectory on receipt (the ros2_control
JTC convention: use it on a real robot); ``now`` stamps with the node clock, which the
simulator uses to drop commands forwarded before its last reset.
"""
from __future__ import annotations

import signal
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration as RclpyDuration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from vla_common.diagnostics import DiagnosticsPublisher
from vla_common.logs import emit_log
from vla_common.messages import time_msg, to_seconds, trajectory_msg
from vla_common.parameters import declare_robot_parameters, describe
from vla_common.qos import LATCHED
from vla_common.shutdown import spin_until_signalled
from vla_safety.gate import GateConfig, GateCore, GateOutput, RUNTIME_LIMITS, Trajectory
from vla_safety.heartbeat import HEARTBEAT_TOPIC, STOP_REQUEST_TOPIC, Heartbeat, HeartbeatError
from vla_safety.ros_support import HEARTBEAT_QOS, runtime_parameters
from vla_safety.rules import DEFAULT_POSITION_LIMIT, DEFAULT_VELOCITY_LIMIT, SafetyLimits

#: how forwarded trajectories are stamped: zero (start on receipt, ros2_control) or the node clock
STAMP_MODES = ('zero', 'now')


class CommandGate(Node):
    def __init__(self) -> None:
        super().__init__('command_gate')
        d = self.declare_parameter
        # the robot's joints, bounds and speeds: defaults from the robot description (robot.yaml)
        declare_robot_parameters(self, {
            'joint_names': describe('the robot joints, in action order', read_only=True),
            'joint_lower': describe('lower command bounds (rad, gripper m); may only rise at run time'),
            'joint_upper': describe('upper command bounds; may only fall at run time'),
            'max_velocity': describe('fastest commanded joint speed (rad/s, gripper m/s); may '
                                     'only fall at run time')})
        n = len(self.get_parameter('joint_names').value)
        d('position_limit', [DEFAULT_POSITION_LIMIT] * n,
          describe('|measured position| above this latches the stop here at once (the '
                   "monitor's rule, one hop sooner); may only fall at run time"))
        d('velocity_limit', [DEFAULT_VELOCITY_LIMIT] * n,
          describe('|measured velocity| above this latches the stop here at once; may only '
                   'fall at run time'))
        d('max_acceleration', [10.0] * n, describe('deceleration of a controlled stop '
                                                   '(rad/s^2, gripper m/s^2); may only fall'))
        d('rate', 30.0, describe('control tick (Hz): the most a path may move at once is one '
                                 "tick's worth", 1.0, 1000.0, read_only=True))
        d('require_monitor', True, describe('forward nothing until the safety monitor\'s '
                                            'heartbeat is heard; latch a stop when it is lost',
                                            read_only=True))
        d('reanchor_time', 0.15, describe('s at max_velocity: a joint further off its command '
                                          'is rate-limited from where it is', 0.0, 10.0,
                                          read_only=True))
        d('jump_time', 0.1, describe('s at max_velocity: a bigger step between two joint '
                                     'states was moved, not driven', 0.0, 10.0, read_only=True))
        d('hold_time', 1.0 / 30.0, describe('time_from_start (s) of a one-point hold',
                                            0.001, 10.0, read_only=True))
        d('joint_state_timeout', 0.15, describe('s (node clock): an older joint state is stale: '
                                                'hold, never re-anchor to it', 0.001, 10.0))
        d('heartbeat_timeout', 0.125, describe('s (steady clock) without a safety heartbeat '
                                               'that holds the robot (2.5 periods at 20 Hz)',
                                               0.001, 10.0))
        d('heartbeat_latch_timeout', 1.0, describe('s (steady clock) without a safety heartbeat '
                                                   'that latches the stop', 0.001, 60.0))
        d('deadman_topic', '', describe('operator deadman (std_msgs/Bool, true while held); '
                                        "'' = off", read_only=True))
        d('deadman_timeout', 0.5, describe('s (steady clock) of deadman silence that holds',
                                           0.001, 10.0, read_only=True))
        d('stamp_mode', 'zero', describe("output header stamp: 'zero' (start on receipt, for a "
                                         "real ros2_control JTC) or 'now' (node clock; the "
                                         'simulator drops commands older than its last reset)',
                                         read_only=True))
        d('input_topic', '/vla/command', describe('requested commands', read_only=True))
        d('output_topic', '/joint_trajectory_controller/joint_trajectory',
          describe('the only topic the robot obeys', read_only=True))

        p = lambda name: self.get_parameter(name).value  # noqa: E731
        self.stamp_mode = str(p('stamp_mode'))
        if self.stamp_mode not in STAMP_MODES:
            raise ValueError(f'stamp_mode must be one of {STAMP_MODES}, got {self.stamp_mode!r}')
        deadman_topic = str(p('deadman_topic'))
        limits = SafetyLimits.from_values(p('joint_names'), p('joint_lower'), p('joint_upper'),
                                          p('max_velocity'), p('position_limit'),
                                          p('velocity_limit'))
        self.core = GateCore(GateConfig(
            limits=limits, max_acceleration=np.asarray(p('max_acceleration'), dtype=np.float64),
            rate=float(p('rate')), require_monitor=bool(p('require_monitor')),
            reanchor_time=float(p('reanchor_time')), jump_time=float(p('jump_time')),
            hold_time=float(p('hold_time')), joint_state_timeout=float(p('joint_state_timeout')),
            heartbeat_timeout=float(p('heartbeat_timeout')),
            heartbeat_latch_timeout=float(p('heartbeat_latch_timeout')),
            deadman_timeout=float(p('deadman_timeout')) if deadman_topic else 0.0))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.out_pub = self.create_publisher(JointTrajectory, str(p('output_topic')), 10)
        self.stop_pub = self.create_publisher(String, STOP_REQUEST_TOPIC, 10)
        self.diagnostics = DiagnosticsPublisher(self, 'vla_safety: command_gate', 'command_gate')
        # Creation order is priority: rclpy's executor runs the ready subscriptions of one wait
        # in the order they were created.  The joint state first (a stop starts from the newest
        # measurement: one that moved the robot out of bounds must not be held at the old
        # position), then the stops, so that a stop ready with a command is taken first (under
        # a flood of commands a stop is never queued behind one); commands last.
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data)
        self.create_subscription(String, HEARTBEAT_TOPIC, self._on_heartbeat, HEARTBEAT_QOS)
        self.create_subscription(String, '/emergency_stop', self._on_estop, LATCHED)
        if deadman_topic:
            self.create_subscription(Bool, deadman_topic, self._on_deadman, 10)
        self.create_subscription(JointTrajectory, str(p('input_topic')), self._on_command, 10)
        # liveness runs on the steady clock: a monitor's death is a wall-clock event.  A
        # deadline timer, restarted by every heartbeat, fires just after heartbeat_timeout of
        # silence (no check period added to the detection, no wake-ups while all is well); the
        # periodic check does the rest (the latch, the deadman, the gate's own stalls).
        self.create_timer(min(0.02, self.core.config.heartbeat_timeout / 3), self._check,
                          clock=self.steady)
        self.deadline = self.create_timer(self.core.config.heartbeat_timeout + 0.001,
                                          self._check, clock=self.steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=self.steady)
        self.get_logger().info(
            f'gating {p("input_topic")} -> {p("output_topic")} for {list(limits.joint_names)}: '
            f'bounds {limits.lower.tolist()} .. {limits.upper.tolist()}, max speed '
            f'{limits.max_velocity.tolist()} per s, stamps {self.stamp_mode}'
            + (', waiting for the safety monitor' if self.core.config.require_monitor else '')
            + (f', operator deadman on {deadman_topic}' if deadman_topic else ''))

    # -- clocks -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _steady_now(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    # -- inputs -----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        stamp = to_seconds(msg.header.stamp)
        self._apply(self.core.on_joint_state(msg.name, msg.position, msg.velocity, self._now(),
                                             stamp or None))

    def _on_command(self, msg: JointTrajectory) -> None:
        rows = [list(pt.positions) for pt in msg.points]
        times = [to_seconds(pt.time_from_start) for pt in msg.points]
        request = to_seconds(msg.header.stamp)
        self._apply(self.core.on_command(msg.joint_names, rows, times, self._now()),
                    request_stamp=request or None)

    def _on_estop(self, msg: String) -> None:
        self._apply(self.core.on_estop(msg.data, self._now()))

    def _on_heartbeat(self, msg: String) -> None:
        try:
            beat = Heartbeat.from_json(msg.data)
        except HeartbeatError as exc:
            if self.core.faults.add('malformed heartbeat'):
                self.get_logger().warning(f'ignored: {exc}')
            return
        self._apply(self.core.on_heartbeat(beat, self._steady_now(), self._now()))
        if self.core.session == beat.session and self.core.seq == beat.seq:
            self.deadline.reset()  # a heartbeat that counts: the silence starts again

    def _on_deadman(self, msg: Bool) -> None:
        self._apply(self.core.on_deadman(bool(msg.data), self._steady_now(), self._now()))

    def _check(self) -> None:
        self._apply(self.core.check(self._steady_now(), self._now()))

    def _on_set_parameters(self, params) -> SetParametersResult:
        return runtime_parameters(params, RUNTIME_LIMITS, self.core.set_parameters,
                                  self.get_logger())

    # -- outputs ----------------------------------------------------------------------------
    def _apply(self, out: GateOutput, request_stamp: float | None = None) -> None:
        emit_log(self.get_logger(), out.log)
        if out.trajectory is not None:
            self.publish(out.trajectory, request_stamp)
        if out.stop_request:
            self.stop_pub.publish(String(data=out.stop_request))

    def publish(self, trajectory: Trajectory, request_stamp: float | None = None) -> None:
        if self.stamp_mode == 'zero':
            stamp = TimeMsg()
        elif trajectory.start is not None:
            # the instant the core planned it from (its rate limit counts from there), or the
            # request's own stamp when that is up to one tick later: on sim time the /clock
            # message may reach this node after a command answering it, and a lock-step
            # simulator would take a forward stamped with the previous tick for no answer
            start = trajectory.start
            if request_stamp is not None and 0.0 < request_stamp - start <= self.core.config.tick + 1e-6:
                start = request_stamp
            stamp = time_msg(start)
        else:
            stamp = self.get_clock().now().to_msg()
        self.out_pub.publish(trajectory_msg(list(self.core.config.limits.joint_names),
                                            trajectory.times, trajectory.positions, stamp))

    def _publish_diagnostics(self) -> None:
        blocked = self.core.blocked_reason()
        if self.core.latched:
            level, message = 'error', blocked
        elif blocked:
            level, message = 'warn', blocked
        elif self.core.q is None:
            level, message = 'warn', 'no /joint_states yet'
        else:
            level, message = 'ok', 'forwarding'
        values = list(self.core.counts.items()) + [('refused', self.core.faults.total)]
        values += [(f'refused: {kind}', count) for kind, count in self.core.faults.counts.items()]
        values += [('monitor_session', self.core.session or ''),
                   ('latched', self.core.latched or 'none')]
        self.diagnostics.publish(level, message, values)

    def send_final_hold(self) -> None:
        """Fail safe on exit: a controlled stop, and a moment for DDS to deliver it."""
        stop = self.core.shutdown(self._now())
        if stop is None:
            return
        self.publish(stop)
        self.get_logger().warning('shutting down: sent a controlled stop to the robot')
        # reliable QoS: wait (bounded) until every matched subscriber has acknowledged it
        self.out_pub.wait_for_all_acked(RclpyDuration(seconds=0.5))
        time.sleep(0.05)


def main(args=None) -> None:
    # The node handles SIGINT (ros2 launch, Ctrl-C) and SIGTERM itself: rclpy's handler would
    # shut the context down before the final hold, and an exception raised from a signal
    # handler can land inside rclpy's C++ calls.  A flag ends the spin loop instead
    # (vla_common.shutdown).
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = CommandGate()
        spin_until_signalled(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # a signal before the handlers were installed, or rclpy shut down elsewhere
    finally:
        if node is not None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the hold short
            if rclpy.ok():
                node.send_final_hold()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
