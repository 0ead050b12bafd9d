"""vla_common: what every vla_ros2 package shares, at the bottom of the package graph.

rclpy and ROS message packages only: no torch, MuJoCo or HDF5, and no import of another
``vla_*`` package, so any package (and any test) may import it.
"""
