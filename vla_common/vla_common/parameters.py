"""Parameter descriptors, so that ``ros2 param describe NODE NAME`` explains every parameter of a
node: what it means (units included), its valid range, and whether it is read only at start-up.

    self.declare_parameter('rate', 30.0, describe('publishing rate (Hz)', 0.1, 1000.0, read_only=True))

A ``read_only`` parameter can be given at launch (``-p``, a YAML file) but not changed while the
node runs (``ros2 param set`` is refused by rclpy).  Ranges are inclusive and checked by rclpy on
every value, launch-time overrides included: float bounds give a ``FloatingPointRange``, int bounds
an ``IntegerRange`` (the bounds must match the parameter's type).
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
