"""``ros2 run vla_collect joy_teleop``: joystick jogging -> ``JointTrajectory`` on ``/vla/command``.

Hold the deadman button to move: the sticks jog the arm joints, or, after the mode button,
the end effector in Cartesian space (x, y, z, yaw; where the arm's kinematics are known).
Two buttons open and close the gripper, two more scale the speed.  The node publishes at
``rate`` Hz: the jog target while the deadman is held, a hold at the measured position when it
is released or the joystick goes silent, and a last hold when the node stops.  The PS4
mapping lives in ``vla_bringup/config/teleop.yaml``.
"""
from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Joy

from vla_collect.joy_buttons import ButtonEdges
from vla_collect.teleop import JogInput, JoyMapping
from vla_collect.teleop_base import TeleopBase, send_final_hold
from vla_common.parameters import describe
from vla_common.shutdown import spin_until_signalled


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
    # the node takes SIGINT/SIGTERM itself (vla_common.shutdown), so the context is still alive
    # for the final hold command
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = JoyTeleopNode()
        spin_until_signalled(node)  # SIGINT/SIGTERM end the loop; the final hold follows
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            send_final_hold(node)
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
