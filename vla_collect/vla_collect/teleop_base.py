"""The part of the teleop nodes they share: parameters, joint-state tracking, command publishing
and the final hold (``joy_teleop`` and ``keyboard_teleop`` are subclasses)."""
from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from vla_collect.teleop import JogController, load_kinematics
from vla_common.messages import parse_joint_state, trajectory_msg
from vla_common.parameters import declare_robot_parameters, describe


class TeleopBase(Node):
    """Parameters, joint-state tracking and command publishing shared by the teleops."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        d = self.declare_parameter
        declare_robot_parameters(self, {  # defaults: the robot description (robot.yaml)
            'joint_names': describe('the robot joints, in action order', read_only=True),
            'joint_lower': describe('lower joint bounds of the targets (rad, gripper m)', read_only=True),
            'joint_upper': describe('upper joint bounds of the targets', read_only=True),
            'max_velocity': describe('joint speed limits (rad/s, gripper m/s)', read_only=True)})
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
            positions, _ = parse_joint_state(msg, self.joint_names)
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
