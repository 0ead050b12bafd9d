"""Turns a scenario from :mod:`vla_bringup.scenarios` into a ROS 2 LaunchDescription.

Only imported by ``launch/*.launch.py`` on a machine with ``launch_ros``.
"""
import tempfile

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vla_bringup.launch_parameters import launch_parameter_files
from vla_bringup.scenarios import ARGUMENTS, build_scenario


def launch_description(scenario: str) -> LaunchDescription:
    """Declare the scenario's arguments and start its nodes with the resolved values."""
    arguments = ARGUMENTS[scenario]

    def nodes(context):
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in arguments}
        # Launch-time values go in a node-scoped file after the YAML files: a plain dict would be
        # written under the wildcard /** and lose to the node's own YAML section.
        overrides = tempfile.mkdtemp(prefix='vla_launch_params_')
        return [Node(package=spec.package, executable=spec.executable, name=spec.name,
                     parameters=launch_parameter_files(spec, overrides),
                     remappings=list(spec.remappings), output='screen')
                for spec in build_scenario(scenario, values)]

    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
          for a in arguments),
        OpaqueFunction(function=nodes),
    ])
