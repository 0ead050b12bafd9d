"""``ros2 run vla_collect joy_teleop``: joystick jogging -> ``JointTrajectory`` on ``/vla/command``.

Hold the deadman button to move: the sticks jog the arm joints, or, after the mode button,
the end effector in Cartesian space (x, y, z, yaw; where the arm's kinematics are known).
Two buttons open and close the gripper, two more scale the speed.  The node publishes at
``rate`` Hz: the jog target while the deadman is held, a hold at the measured position when it
is released or the joystick goes silent, and a last hold when the node stops.  The PS4
mapping lives in ``vla_bringup/config/teleop.yaml``.
"""
from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState, Joy
from trajectory_msgs.msg import JointTrajectory

from vla_collect.recorder import ButtonEdges
from vla_collect.ros_conversions import joint_state_to_arrays
from vla_collect.teleop import JogController, JogInput, JoyMapping, load_kinematics
from vla_common.messages import trajectory_msg
from vla_common.parameters import describe


class TeleopBase(Node):
    """Parameters, joint-state tracking and command publishing shared by the teleops."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        d = self.declare_parameter
        d('joint_names', ['joint1'], describe('the robot joints, in action order', read_only=True))
        d('joint_lower', [0.0], describe('lower joint bounds of the targets (rad, gripper m)', read_only=True))
        d('joint_upper', [1.0], describe('upper joint bounds of the targets', read_only=True))
        d('max_velocity', [1.0], describe('joint speed limits (rad/s, gripper m/s)', read_only=True))
        d('rate', 30.0, describe('command rate (Hz, node clock)', 0.1, 1000.0, read_only=True))
        d('gripper_joint', 'gripper', describe("the joint the gripper controls drive ('': none)",
                                               read_only=True))
        d('joint_speed', 0.6, describe('rad/s at full input and speed x1 (capped by max_velocity)',
                                       0.0, 100.0, read_only=True))
        d('linear_speed', 0.08, describe('m/s of the tool at full input and speed x1', 0.0, 10.0,
                                         read_only=True))
        d('angular_speed', 0.6, describe('rad/s of tool yaw at full input and speed x1', 0.0, 100.0,
                                         read_only=True))
        d('speed_scale', 0.5, describe('initial speed factor (clipped to 0.1 .. 1.0)', read_only=True))
        d('max_lead', 0.3, describe('rad the target may run ahead of the measured joints', 0.0, 100.0,
                                    read_only=True))
        d('kinematics', '', describe("arm model for Cartesian jogging: vla_sim or '' (joint jogging "
                                     'only)', read_only=True))
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        self.rate = float(p('rate'))
        if self.rate <= 0:
            raise ValueError(f'rate must be > 0 Hz, got {self.rate}')
        self.joint_names = [str(n) for n in p('joint_names')]
        self.jog = JogController(
            self.joint_names, p('joint_lower'), p('joint_upper'), p('max_velocity'),
            gripper_joint=str(p('gripper_joint')) or None, joint_speed=float(p('joint_speed')),
            linear_speed=float(p('linear_speed')), angular_speed=float(p('angular_speed')),
            speed_scale=float(p('speed_scale')), max_lead=float(p('max_lead')),
            kinematics=load_kinematics(str(p('kinematics'))))
        self.command_pub = self.create_publisher(JointTrajectory, '/vla/command', 10)
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            positions, _ = joint_state_to_arrays(msg, self.joint_names)
        except ValueError as exc:
            self.get_logger().warning(f'/joint_states ignored: {exc}', throttle_duration_sec=5.0)
            return
        self.jog.set_measured(positions)

    def publish_target(self, target: np.ndarray | None) -> None:
        if target is None:
            return
        self.command_pub.publish(trajectory_msg(self.joint_names, [1.0 / self.rate], [target],
                                                self.get_clock().now().to_msg()))

    def publish_hold(self) -> None:
        """Stop where the arm is (sent when the operator lets go and when the node stops)."""
        self.publish_target(self.jog.hold())

    def toggle_mode(self) -> None:
        try:
            mode = self.jog.toggle_mode()
        except ValueError as exc:
            self.get_logger().warning(str(exc))
            return
        self.get_logger().info(f'{mode} jogging')

    def scale_speed(self, factor: float) -> None:
        self.get_logger().info(f'speed x{self.jog.scale_speed(factor):.2f}')


def send_final_hold(node: TeleopBase) -> None:
    """Fail safe on exit: hold the arm where it is, and give DDS a moment to deliver it."""
    try:
        node.publish_hold()
        time.sleep(0.2)
    except Exception as exc:  # noqa: BLE001 - the context may already be gone
        node.get_logger().warning(f'could not send the final hold: {exc}')


class JoyTeleopNode(TeleopBase):
    def __init__(self) -> None:
        super().__init__('joy_teleop')
        d = self.declare_parameter
        d('joy_timeout', 0.5, describe('s without /joy before the deadman counts as released',
                                       0.001, 60.0, read_only=True))
        d('deadman_button', 4, describe('hold to move; releasing it holds the arm', read_only=True))
        d('gripper_open_button', 5, describe('opens the gripper', read_only=True))
        d('gripper_close_button', 7, describe('closes the gripper', read_only=True))
        d('speed_up_button', 2, describe('speed x1.25', read_only=True))
        d('speed_down_button', 0, describe('speed x0.8', read_only=True))
        d('mode_button', 3, describe('toggles joint / Cartesian jogging', read_only=True))
        d('joint_axes', [0, 1, 4, 3, 7, 6], describe('the axis jogging each arm joint', read_only=True))
        d('joint_axis_signs', [1.0] * 6, describe("each joint axis's direction (1 or -1)", read_only=True))
        d('cartesian_axes', [1, 0, 4, 3], describe('the axes for tool x, y, z, yaw', read_only=True))
        d('cartesian_axis_signs', [1.0] * 4, describe('directions of x, y, z, yaw', read_only=True))
        d('deadzone', 0.1, describe('stick values below this are zero', 0.0, 1.0, read_only=True))
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        self.mapping = JoyMapping(
            deadman_button=int(p('deadman_button')),
            gripper_open_button=int(p('gripper_open_button')),
            gripper_close_button=int(p('gripper_close_button')),
            speed_up_button=int(p('speed_up_button')), speed_down_button=int(p('speed_down_button')),
            mode_button=int(p('mode_button')), joint_axes=list(p('joint_axes')),
            joint_axis_signs=list(p('joint_axis_signs')), cartesian_axes=list(p('cartesian_axes')),
            cartesian_axis_signs=list(p('cartesian_axis_signs')), deadzone=float(p('deadzone')))
        self.joy_timeout = float(p('joy_timeout'))
        self.edges = ButtonEdges()
        self.last_input = JogInput()
        self.last_joy: float | None = None
        self.create_subscription(Joy, '/joy', self._on_joy, 10)
        self.create_timer(1.0 / self.rate, self._tick)
        self.get_logger().info(f'hold button {self.mapping.deadman_button} to move; publishing '
                               f'on {self.command_pub.topic_name} at {self.rate:g} Hz')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joy(self, msg: Joy) -> None:
        pressed = self.edges.pressed(msg.buttons)
        if self.mapping.mode_button in pressed:
            self.toggle_mode()
        if self.mapping.speed_up_button in pressed:
            self.scale_speed(1.25)
        if self.mapping.speed_down_button in pressed:
            self.scale_speed(0.8)
        self.last_input = self.mapping.to_input(msg.axes, msg.buttons)
        self.last_joy = self._now()

    def _tick(self) -> None:
        inp = self.last_input
        if self.last_joy is None or self._now() - self.last_joy > self.joy_timeout:
            inp = JogInput()  # a silent joystick releases the deadman
        self.publish_target(self.jog.step(inp, 1.0 / self.rate))


def main(args=None) -> None:
    # Python's own SIGINT handling keeps the context alive for the final hold command
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = JoyTeleopNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            send_final_hold(node)
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
