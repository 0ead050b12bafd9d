"""Teleoperation and demonstration recording: the robot (the MuJoCo arm by default), the
command gate, the joystick teleop and the teleop_collector recorder.

    ros2 launch vla_bringup teleop.launch.py output_dir:=~/demos language_command:="pick up the red cube"
    ros2 launch vla_bringup teleop.launch.py use_sim:=false     # a real arm

Run the joystick driver beside it (``ros2 run joy joy_node``), or drive from a terminal with
``ros2 run vla_collect keyboard_teleop``.  Without the ROS 2 CLI: ``vla teleop --output-dir ~/demos``.
"""
from vla_bringup.launch_support import launch_description


def generate_launch_description():
    return launch_description('teleop')
