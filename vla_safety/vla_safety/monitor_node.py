"""``ros2 run vla_safety safety_monitor``: joint limits, a joint-state watchdog and the e-stop.

Checks every ``/joint_states`` message against per-joint position and velocity limits (the
course's 3.5 rad and 2.0 rad/s by default; velocities estimated from the positions where the
driver publishes none or NaN) and watches that they keep coming (``joint_state_timeout``, on
the wall clock).  On a violation it latches the emergency stop: the reason goes out on the
latched ``/emergency_stop`` (transient-local, depth 1; '' = not stopped) and in the safety
heartbeat (``/safety/heartbeat``, ``heartbeat_rate`` Hz, see :mod:`vla_safety.heartbeat`) that
the command gate follows.  The stop stays latched until ``/emergency_stop/reset``
(std_srvs/Trigger) is called *and* the violation has cleared; every reset is logged.
``/emergency_stop/trigger`` stops the robot by hand; the gate asks for a stop it latched on its
own on ``/safety/stop_request``.  The limits can only be tightened while the node runs.
The rules live in :class:`vla_safety.monitor.MonitorCore`.
"""
from __future__ import annotations

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_common.diagnostics import DiagnosticsPublisher
from vla_common.logs import emit_log
from vla_common.messages import to_seconds
from vla_common.parameters import declare_robot_parameters, describe
from vla_common.qos import LATCHED
from vla_safety.heartbeat import HEARTBEAT_TOPIC, STOP_REQUEST_TOPIC
from vla_safety.monitor import RUNTIME_LIMITS, MonitorConfig, MonitorCore, MonitorOutput
from vla_safety.ros_support import HEARTBEAT_QOS, runtime_parameters
from vla_safety.rules import DEFAULT_POSITION_LIMIT, DEFAULT_VELOCITY_LIMIT, SafetyLimits


class SafetyMonitor(Node):
    def __init__(self) -> None:
        super().__init__('safety_monitor')
        d = self.declare_parameter
        # the robot's joints (and its bounds and speeds, unused here): defaults from the robot
        # description (robot.yaml), as in every node
        declare_robot_parameters(self, {
            'joint_names': describe('the robot joints, in action order', read_only=True),
            'joint_lower': describe('command bounds (unused here)', read_only=True),
            'joint_upper': describe('command bounds (unused here)', read_only=True),
            'max_velocity': describe("the gate's speed (unused here)", read_only=True)})
        n = len(self.get_parameter('joint_names').value)
        d('position_limit', [DEFAULT_POSITION_LIMIT] * n,
          describe('|measured position| above this latches the stop; may only fall at run time'))
        d('velocity_limit', [DEFAULT_VELOCITY_LIMIT] * n,
          describe('|measured velocity| above this latches the stop; may only fall at run time'))
        d('joint_state_timeout', 0.5, describe('s (wall clock) without a usable joint state that '
                                               'latches the stop; may only fall', 0.001, 60.0))
        d('check_rate', 50.0, describe('Hz of the watchdog check', 1.0, 1000.0, read_only=True))
        d('heartbeat_rate', 20.0, describe('Hz of the safety heartbeat the gate follows',
                                           1.0, 1000.0, read_only=True))
        d('start_latched', False, describe('start stopped; the operator resets once the robot '
                                           'is ready', read_only=True))
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        limits = SafetyLimits.from_values(p('joint_names'), p('joint_lower'), p('joint_upper'),
                                         p('max_velocity'), p('position_limit'),
                                         p('velocity_limit'))
        self.core = MonitorCore(MonitorConfig(limits=limits,
                                             joint_state_timeout=float(p('joint_state_timeout')),
                                             start_latched=bool(p('start_latched'))))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.estop_pub = self.create_publisher(String, '/emergency_stop', LATCHED)
        self.heartbeat_pub = self.create_publisher(String, HEARTBEAT_TOPIC, HEARTBEAT_QOS)
        self.diagnostics = DiagnosticsPublisher(self, 'vla_safety: safety_monitor', 'safety_monitor')
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data)
        self.create_subscription(String, STOP_REQUEST_TOPIC, self._on_stop_request, 10)
        self.create_service(Trigger, '/emergency_stop/reset', self._on_reset)
        self.create_service(Trigger, '/emergency_stop/trigger', self._on_trigger)
        # every timer on the steady clock: the watchdog must fire when the sim clock stops
        self.create_timer(1.0 / float(p('check_rate')), self._watchdog, clock=self.steady)
        self.create_timer(1.0 / float(p('heartbeat_rate')), self._heartbeat, clock=self.steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=self.steady)
        self._apply(self.core.start())
        self.get_logger().info(
            f'monitoring /joint_states of {list(limits.joint_names)}: |position| <= '
            f'{limits.position_limit.tolist()}, |velocity| <= {limits.velocity_limit.tolist()}, '
            f'watchdog {self.core.config.joint_state_timeout:g} s; heartbeat session '
            f'{self.core.session} at {p("heartbeat_rate"):g} Hz')

    def _steady_now(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    # -- inputs -----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        stamp = to_seconds(msg.header.stamp)
        self._apply(self.core.on_joint_state(msg.name, msg.position, msg.velocity,
                                            stamp or None, self._steady_now()))

    def _on_stop_request(self, msg: String) -> None:
        self._apply(self.core.on_stop_request(msg.data))

    def _watchdog(self) -> None:
        self._apply(self.core.watchdog(self._steady_now()))

    def _on_trigger(self, request, response):
        answer, out = self.core.trigger('manual emergency stop (/emergency_stop/trigger)')
        self._apply(out)
        response.success, response.message = True, answer
        return response

    def _on_reset(self, request, response):
        success, answer, out = self.core.reset(self._steady_now())
        self._apply(out)
        response.success, response.message = success, answer
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        return runtime_parameters(params, RUNTIME_LIMITS, self.core.set_parameters,
                                  self.get_logger())

    # -- outputs ----------------------------------------------------------------------------
    def _apply(self, out: MonitorOutput) -> None:
        emit_log(self.get_logger(), out.log)
        if out.estop is not None:
            # the gate first (the heartbeat is what it acts on), then everyone else: a command
            # the gate forwards after /emergency_stop is out would be a command after the stop
            self._heartbeat()
            self.estop_pub.publish(String(data=out.estop))
            if out.estop:
                self._publish_diagnostics()

    def _heartbeat(self) -> None:
        self.heartbeat_pub.publish(String(data=self.core.heartbeat().to_json()))

    def _publish_diagnostics(self) -> None:
        core = self.core
        if core.stopped:
            level, message = 'error', f'emergency stop: {core.stopped}'
        elif core.last_state is None:
            level, message = 'warn', 'no /joint_states yet'
        else:
            level, message = 'ok', 'ok'
        age = '' if core.last_state is None else f'{self._steady_now() - core.last_state:.3f}'
        values = [('emergency_stop', core.stopped or 'none'), *core.counts.items(),
                  ('joint_state_age_s', age), ('session', core.session),
                  ('violation', '' if core.violation is None else core.violation.reason),
                  ('ignored_joint_states', core.faults.total)]
        values += [(f'fault: {kind}', count) for kind, count in core.faults.counts.items()]
        if core.q is not None:
            values.append(('max_abs_position', f'{float(np.max(np.abs(core.q))):.3f}'))
        if core.v is not None:
            values.append(('max_abs_velocity', f'{float(np.max(np.abs(core.v))):.3f}'))
        self.diagnostics.publish(level, message, values)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = SafetyMonitor()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
