"""Started without robot.yaml, the gate and the monitor default to the robot description's
joints, bounds and speeds (vla_common.robot), not to values of their own."""
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import parameter_value_to_python

from vla_common.launching import NodeGroup, NodeSpec
from vla_common.robot import default_robot
from vla_common.testing import GraphProbe

pytestmark = pytest.mark.ros

NAMES = ['joint_names', 'joint_lower', 'joint_upper', 'max_velocity']


def test_gate_and_monitor_default_to_the_robot_description():
    specs = [NodeSpec('vla_safety', 'safety_monitor', 'vla_safety.monitor_node', 'safety_monitor'),
             NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate')]
    group = NodeGroup(specs).start()
    probe = GraphProbe()
    try:
        expected = default_robot().parameters()
        for node in ('safety_monitor', 'command_gate'):
            answer = probe.call(GetParameters, f'/{node}/get_parameters',
                                GetParameters.Request(names=NAMES), timeout=30.0)
            assert answer is not None, '\n'.join(p.output() for p in group.processes)
            got = {name: list(parameter_value_to_python(value))
                   for name, value in zip(NAMES, answer.values)}
            assert got == expected, node
    finally:
        probe.close()
        group.stop()
