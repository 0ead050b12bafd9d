"""Parameter descriptors: the description, range and read-only flag rclpy enforces, on a real node."""
from __future__ import annotations

import pytest
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_common.parameters import describe
from vla_common.testing import undescribed


def test_describe_builds_the_range_of_the_bounds_type():
    d = describe('control rate (Hz)', 0.1, 1000.0, read_only=True)
    assert d.description == 'control rate (Hz)' and d.read_only
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.1, 1000.0)
    assert not d.integer_range
    i = describe('pixels', 8, 4096)
    assert (i.integer_range[0].from_value, i.integer_range[0].to_value, i.integer_range[0].step) == (8, 4096, 1)
    assert not i.floating_point_range and not i.read_only
    plain = describe('a topic')
    assert not plain.floating_point_range and not plain.integer_range
    with pytest.raises(ValueError):
        describe('half a range', 0.0)
    with pytest.raises(TypeError):
        describe('a flag', False, True)


def test_a_node_enforces_ranges_and_read_only_and_lists_what_lacks_a_description():
    context = Context()
    rclpy.init(context=context)
    try:
        node = Node('describe_test', context=context)
        node.declare_parameter('rate', 30.0, describe('Hz', 0.1, 1000.0, read_only=True))
        node.declare_parameter('seed', 0, describe('seed', 0, 100))
        node.declare_parameter('timeout', 0.5, describe('s', 0.001, 10.0))
        node.declare_parameter('bare', 1)
        set_one = lambda name, value: node.set_parameters([Parameter(name, value=value)])[0]  # noqa: E731
        assert not set_one('rate', 60.0).successful  # read at start-up only
        assert not set_one('seed', -1).successful and set_one('seed', 100).successful
        assert not set_one('timeout', 11.0).successful and set_one('timeout', 2.0).successful
        with pytest.raises(InvalidParameterValueException):  # a launch-time value is checked too
            node.declare_parameter('size', 2, describe('px', 8, 64))
        names = ['rate', 'seed', 'timeout', 'bare', 'use_sim_time']
        descriptors = dict(zip(names, node.describe_parameters(names)))
        assert undescribed(descriptors) == ['bare']
        assert isinstance(descriptors['rate'], ParameterDescriptor) and descriptors['rate'].read_only
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_set_parameters_request_types_follow_the_values():
    from rcl_interfaces.msg import ParameterType

    from vla_common.parameters import set_parameters_request
    request = set_parameters_request({'task': 'pick_red', 'seed': 3, 'rate': 30.0, 'lockstep': True,
                                      'max_velocity': [1.0, 2.0], 'names': ['a', 'b']})
    got = {p.name: p.value for p in request.parameters}
    assert got['task'].type == ParameterType.PARAMETER_STRING and got['task'].string_value == 'pick_red'
    assert got['seed'].type == ParameterType.PARAMETER_INTEGER and got['seed'].integer_value == 3
    assert got['rate'].type == ParameterType.PARAMETER_DOUBLE and got['rate'].double_value == 30.0
    assert got['lockstep'].type == ParameterType.PARAMETER_BOOL and got['lockstep'].bool_value
    assert got['max_velocity'].type == ParameterType.PARAMETER_DOUBLE_ARRAY
    assert list(got['max_velocity'].double_array_value) == [1.0, 2.0]
    assert list(got['names'].string_array_value) == ['a', 'b']
