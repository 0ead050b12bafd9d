"""Turns a scenario from :mod:`vla_bringup.scenarios` into a ROS 2 LaunchDescription.

Only imported by ``launch/*.launch.py`` on a machine with ``launch_ros``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vla_bringup.scenarios import ARGUMENTS, build_scenario


def launch_description(scenario: str) -> LaunchDescription:
    """Declare the scenario's arguments and start its nodes with the resolved values."""
    arguments = ARGUMENTS[scenario]

    def nodes(context):
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in arguments}
        return [Node(package=spec.package, executable=spec.executable, name=spec.name,
                     parameters=[*spec.param_files, dict(spec.parameters)],
                     remappings=list(spec.remappings), output='screen')
                for spec in build_scenario(scenario, values)]

    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
          for a in arguments),
        OpaqueFunction(function=nodes),
    ])
