"""``ros2 run vla_safety safety_monitor``: joint limits, a joint-state watchdog and the e-stop.

Checks every ``/joint_states`` message against per-joint position and velocity limits (the
course's 3.5 rad and 2.0 rad/s by default) and watches that they keep coming
(``joint_state_timeout``, on the wall clock).  On a violation it publishes the reason on the
latched ``/emergency_stop`` (transient-local, depth 1); the command gate then holds the robot
and forwards nothing.  The stop stays latched until ``/emergency_stop/reset`` (std_srvs/Trigger)
is called *and* the violation has cleared; every reset is logged.  An empty string on
``/emergency_stop`` means "not stopped" (published at start-up and on reset).
``/emergency_stop/trigger`` stops the robot by hand (an operator's software stop button).

The limits can be changed at run time (``position_limit``, ``velocity_limit``), e.g. to widen
a limit so that a robot stopped beyond it can be reset and moved back.
"""
from __future__ import annotations

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_safety.gate_node import LATCHED
from vla_safety.rules import (DEFAULT_POSITION_LIMIT, DEFAULT_VELOCITY_LIMIT, Fault, FaultLog,
                              SafetyConfigError, SafetyLimits, check_joint_state,
                              joint_state_arrays)

LIMIT_PARAMETERS = ('position_limit', 'velocity_limit')


class SafetyMonitor(Node):
    def __init__(self) -> None:
        super().__init__('safety_monitor')
        self.declare_parameter('joint_names', ['joint1', 'joint2', 'joint3', 'joint4', 'joint5',
                                               'joint6', 'gripper'])
        n = len(self.get_parameter('joint_names').value)
        self.declare_parameter('joint_lower', [-1e9] * n)
        self.declare_parameter('joint_upper', [1e9] * n)
        self.declare_parameter('max_velocity', [1e9] * n)
        self.declare_parameter('position_limit', [DEFAULT_POSITION_LIMIT] * n)
        self.declare_parameter('velocity_limit', [DEFAULT_VELOCITY_LIMIT] * n)
        self.declare_parameter('joint_state_timeout', 0.5)
        self.declare_parameter('check_rate', 50.0)
        self.declare_parameter('start_latched', False)
        self.limits = self._limits({})
        self.timeout = float(self.get_parameter('joint_state_timeout').value)
        check_rate = float(self.get_parameter('check_rate').value)
        if not self.timeout > 0 or not check_rate > 0:
            raise ValueError(f'joint_state_timeout ({self.timeout}) and check_rate ({check_rate}) '
                             'must be > 0')
        self.add_on_set_parameters_callback(self._check_parameters)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.last_state: float | None = None  # steady time (s) of the last valid joint state
        self.q: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.violation: Fault | None = None  # what the latest state (or the watchdog) says now
        self.stopped = ''  # latched reason; '' = not stopped
        self.faults = FaultLog()
        self.estops = self.resets = self.refused_resets = self.states = 0

        self.estop_pub = self.create_publisher(String, '/emergency_stop', LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data)
        self.create_service(Trigger, '/emergency_stop/reset', self._on_reset)
        self.create_service(Trigger, '/emergency_stop/trigger', self._on_trigger)
        self.create_timer(1.0 / check_rate, self._watchdog, clock=self.steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=self.steady)
        if self.get_parameter('start_latched').value:
            self._trip(Fault('start-up', 'started latched (start_latched): call '
                             '/emergency_stop/reset once the robot is ready'))
        else:
            self.estop_pub.publish(String(data=''))
        self.get_logger().info(
            f'monitoring /joint_states of {list(self.limits.joint_names)}: |position| <= '
            f'{self.limits.position_limit.tolist()}, |velocity| <= '
            f'{self.limits.velocity_limit.tolist()}, watchdog {self.timeout:g} s')

    # -- parameters -----------------------------------------------------------------------------
    def _limits(self, overrides: dict) -> SafetyLimits:
        def value(name):
            return overrides.get(name, self.get_parameter(name).value)
        return SafetyLimits.from_values(
            value('joint_names'), value('joint_lower'), value('joint_upper'),
            value('max_velocity'), value('position_limit'), value('velocity_limit'))

    def _check_parameters(self, params) -> SetParametersResult:
        overrides = {}
        for param in params:
            if param.name in LIMIT_PARAMETERS:
                overrides[param.name] = param.value
            elif param.name == 'joint_state_timeout':
                if not isinstance(param.value, float) or param.value <= 0:
                    return SetParametersResult(successful=False, reason='joint_state_timeout must '
                                               f'be a float > 0, got {param.value!r}')
            elif param.name != 'use_sim_time':
                return SetParametersResult(successful=False,
                                           reason=f'{param.name} is read at start-up only')
        try:
            limits = self._limits(overrides) if overrides else self.limits
        except SafetyConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if overrides:
            self.get_logger().warning(f'limits changed: {overrides}')
            self.limits = limits
        for param in params:
            if param.name == 'joint_state_timeout':
                self.timeout = float(param.value)
        return SetParametersResult(successful=True)

    # -- checks ---------------------------------------------------------------------------------
    def _steady_now(self) -> float:
        return self.steady.now().nanoseconds * 1e-9

    def _on_joint_state(self, msg: JointState) -> None:
        arrays = joint_state_arrays(msg.name, msg.position, msg.velocity, self.limits)
        if isinstance(arrays, Fault):
            # Not a limit violation by itself; the watchdog trips if no usable state follows.
            if self.faults.add(arrays):
                self.get_logger().warning(f'ignored joint state: {arrays.reason} (further '
                                          f'{arrays.kind!r} faults are counted in /diagnostics)')
            return
        self.q, self.v = arrays
        self.last_state = self._steady_now()
        self.states += 1
        self.violation = check_joint_state(self.q, self.v, self.limits)
        if self.violation is not None and not self.stopped:
            self._trip(self.violation)

    def _watchdog(self) -> None:
        if self.last_state is None:
            return  # armed by the first joint state
        age = self._steady_now() - self.last_state
        if age > self.timeout:
            self.violation = Fault('joint state watchdog',
                                   f'no usable /joint_states for {age:.2f} s (timeout {self.timeout:g} s)')
            if not self.stopped:
                self._trip(self.violation)

    def _trip(self, fault: Fault) -> None:
        self.stopped = fault.reason
        self.estops += 1
        self.estop_pub.publish(String(data=fault.reason))
        self.get_logger().error(f'EMERGENCY STOP: {fault.reason}')
        self._publish_diagnostics()

    # -- services -------------------------------------------------------------------------------
    def _on_trigger(self, request, response):
        if self.stopped:
            response.success, response.message = True, f'already stopped: {self.stopped}'
        else:
            self._trip(Fault('manual', 'manual emergency stop (/emergency_stop/trigger)'))
            response.success, response.message = True, 'stopped'
        return response

    def _on_reset(self, request, response):
        if not self.stopped:
            response.success, response.message = True, 'no emergency stop is latched'
            return response
        if self.q is not None:  # judged by the limits in force now (they may have changed)
            self.violation = check_joint_state(self.q, self.v, self.limits)
        self._watchdog()
        if self.last_state is None:
            reason = 'no /joint_states received: cannot tell whether the violation has cleared'
        elif self.violation is not None:
            reason = f'the violation persists: {self.violation.reason}'
        else:
            reason = ''
        if reason:
            self.refused_resets += 1
            self.get_logger().warning(f'emergency stop reset refused: {reason}')
            response.success, response.message = False, f'reset refused: {reason}'
            return response
        self.get_logger().warning(f'emergency stop reset by a call to /emergency_stop/reset '
                                  f'(it was: {self.stopped})')
        previous, self.stopped = self.stopped, ''
        self.resets += 1
        self.estop_pub.publish(String(data=''))
        self._publish_diagnostics()
        response.success, response.message = True, f'reset (was: {previous})'
        return response

    def _publish_diagnostics(self) -> None:
        if self.stopped:
            level, message = DiagnosticStatus.ERROR, f'emergency stop: {self.stopped}'
        elif self.last_state is None:
            level, message = DiagnosticStatus.WARN, 'no /joint_states yet'
        else:
            level, message = DiagnosticStatus.OK, 'ok'
        age = '' if self.last_state is None else f'{self._steady_now() - self.last_state:.3f}'
        values = [('emergency_stop', self.stopped or 'none'), ('estops', self.estops),
                  ('resets', self.resets), ('refused_resets', self.refused_resets),
                  ('joint_states', self.states), ('joint_state_age_s', age),
                  ('violation', '' if self.violation is None else self.violation.reason),
                  ('ignored_joint_states', self.faults.total)]
        if self.q is not None:
            values.append(('max_abs_position', f'{float(np.max(np.abs(self.q))):.3f}'))
        if self.v is not None:
            values.append(('max_abs_velocity', f'{float(np.max(np.abs(self.v))):.3f}'))
        status = DiagnosticStatus(level=level, name='vla_safety: safety_monitor', message=message,
                                  hardware_id='safety_monitor')
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


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
