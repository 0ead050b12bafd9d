"""The MuJoCo simulated arm driven by the scripted expert.

    ros2 launch vla_bringup sim.launch.py task:=stack_green_on_red seed:=3

Without the ROS 2 CLI: ``vla sim --task stack_green_on_red --seed 3``.
"""
from vla_bringup.launch_support import launch_description


def generate_launch_description():
    return launch_description('sim')
