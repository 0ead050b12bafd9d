"""A trained VLA checkpoint controlling the robot behind the command gate and safety monitor.

    ros2 launch vla_bringup deploy.launch.py checkpoint:=runs/demo/checkpoint command:="pick up the red cube"
    ros2 launch vla_bringup deploy.launch.py checkpoint:=DIR use_sim:=false   # a real robot

When any node of the deployment exits, the launch shuts down (as ``vla deploy`` does): the
command gate sends its controlled stop on the way out, and a dead safety monitor has already
made the gate hold (its heartbeat went silent).  On a real ros2_control robot set the gate's
``stamp_mode`` to ``zero`` (docs/safety.md).

The controller is a managed lifecycle node that configures (loads and checks the checkpoint)
and activates itself: ``autostart: true`` in controller.yaml, the same on this path and the
``vla`` runner's, so neither calls the lifecycle services.  To drive the transitions yourself
(a lifecycle manager), set ``autostart: false`` there and call
``ros2 lifecycle set /vla_controller configure`` then ``activate``.

Without the ROS 2 CLI: ``vla deploy --checkpoint DIR --command "pick up the red cube"``.
"""
import os

from launch.actions import RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit

from vla_bringup.launch_support import launch_description


def generate_launch_description():
    def shutdown_on_exit(event, context):
        """Any node that exits stops the deployment: no part of the safety layer runs alone."""
        name = os.path.basename(event.cmd[0]) if event.cmd else 'a node'
        return [Shutdown(reason=f'{name} exited with code {event.returncode}: stopping the robot')]

    description = launch_description('deploy')
    description.add_action(RegisterEventHandler(OnProcessExit(on_exit=shutdown_on_exit)))
    return description
