"""QoS profiles shared by the suite's topics (camera and joint streams use rclpy's
``qos_profile_sensor_data``; commands are reliable with the default depth)."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

#: latched state (``/emergency_stop``, status topics): transient-local, depth 1, so a late
#: joiner gets the current value
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     reliability=ReliabilityPolicy.RELIABLE)
