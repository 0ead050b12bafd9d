"""The shared QoS profiles say what DESIGN.md says of the topics that use them."""
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

from vla_common.qos import LATCHED


def test_latched_is_transient_local_reliable_depth_one():
    # /emergency_stop: a late joiner gets the current reason (or the '' of a reset) at once
    assert LATCHED.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert LATCHED.reliability == ReliabilityPolicy.RELIABLE
    assert LATCHED.depth == 1
