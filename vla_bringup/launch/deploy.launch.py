"""A trained VLA checkpoint controlling the robot behind the command gate and safety monitor.

    ros2 launch vla_bringup deploy.launch.py checkpoint:=runs/demo/checkpoint command:="pick up the red cube"
    ros2 launch vla_bringup deploy.launch.py checkpoint:=DIR use_sim:=false   # a real robot

Without the ROS 2 CLI: ``vla deploy --checkpoint DIR --command "pick up the red cube"``.
"""
from vla_bringup.launch_support import launch_description


def generate_launch_description():
    return launch_description('deploy')
