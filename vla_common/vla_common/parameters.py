"""Parameter descriptors, so that ``ros2 param describe NODE NAME`` explains every parameter of a
node: what it means (units included), its valid range, and whether it is read only at start-up.

    self.declare_parameter('rate', 30.0, describe('publishing rate (Hz)', 0.1, 1000.0, read_only=True))

A ``read_only`` parameter can be given at launch (``-p``, a YAML file) but not changed while the
node runs (``ros2 param set`` is refused by rclpy).  Ranges are inclusive and checked by rclpy on
every value, launch-time overrides included: float bounds give a ``FloatingPointRange``, int bounds
an ``IntegerRange`` (the bounds must match the parameter's type).

The robot's own parameters (``joint_names``, ``joint_lower``, ``joint_upper``, ``max_velocity``)
take their defaults from one place, the robot description (:mod:`vla_common.robot`):
:func:`declare_robot_parameters`.
"""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def describe(text: str, low: float | int | None = None, high: float | int | None = None, *,
             read_only: bool = False) -> ParameterDescriptor:
    """A descriptor with ``text`` as description, ``[low, high]`` as range when given."""
    descriptor = ParameterDescriptor(description=text, read_only=read_only)
    if (low is None) != (high is None):
        raise ValueError(f'a range needs both bounds, got {low!r} and {high!r}')
    if low is None:
        return descriptor
    if isinstance(low, bool) or isinstance(high, bool):
        raise TypeError('a bool parameter has no range')
    if isinstance(low, int) and isinstance(high, int):
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    else:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high))]
    return descriptor


#: the robot's parameters, in declaration order (joint_names first: the others follow its joints)
ROBOT_PARAMETERS = ('joint_names', 'joint_lower', 'joint_upper', 'max_velocity')


def robot_default(name: str, joint_names=None):
    """The default of one of :data:`ROBOT_PARAMETERS`: the robot description's value
    (:func:`vla_common.robot.robot_defaults`, read from ``robot.yaml``) for ``joint_names``, or
    an uninitialised array type (``Parameter.Type``: the node must be given the value) when
    ``joint_names`` names a joint the description does not have or no description is found
    (a node installed without ``vla_bringup``)."""
    from rclpy.parameter import Parameter

    from vla_common.robot import RobotDescriptionNotFound, robot_defaults
    try:
        default = robot_defaults(joint_names)[name]
    except RobotDescriptionNotFound:
        default = None
    if default is None:
        return Parameter.Type.STRING_ARRAY if name == 'joint_names' else Parameter.Type.DOUBLE_ARRAY
    return default


def declare_robot_parameters(node, descriptors) -> None:
    """Declare those of :data:`ROBOT_PARAMETERS` that ``descriptors`` (name ->
    ParameterDescriptor) lists, with the robot description's values as defaults (the same in
    every node); the per-joint ones follow the node's ``joint_names``."""
    for name in ROBOT_PARAMETERS:
        if name in descriptors:
            names = None if name == 'joint_names' else node.get_parameter('joint_names').value
            node.declare_parameter(name, robot_default(name, names), descriptors[name])


def set_parameters_request(values):
    """A ``rcl_interfaces/SetParameters`` request for ``values`` (name -> Python value: bool, int,
    float, str or a list of one of them; the type follows the value, as ``ros2 param set``)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    return SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()
                                             for name, value in values.items()])
