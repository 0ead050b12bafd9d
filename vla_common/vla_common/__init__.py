"""vla_common: what every vla_ros2 package shares, at the bottom of the package graph.

rclpy and ROS message packages only: no torch, MuJoCo or HDF5, and no import of another
``vla_*`` package, so any package (and any test) may import it.

- :mod:`vla_common.launching`  node processes without ``ros2 launch`` (NodeSpec, NodeGroup),
  private ROS domains, ``wait_for`` (no rclpy import)
- :mod:`vla_common.qos`        QoS profiles shared across topics (``LATCHED``)
- :mod:`vla_common.messages`   stamps/durations <-> seconds, the joint-state parser, ``trajectory_msg``,
  Image <-> RGB
- :mod:`vla_common.diagnostics` ``DiagnosticsPublisher``: a node's status on ``/diagnostics``
- :mod:`vla_common.logs`       ``emit_log``: a ROS-free core's ``(level, text)`` lines through a node logger
- :mod:`vla_common.joint_commands` the checks of a joint command (names, points, times) the gate and the
  simulator share, and the reorder to the robot's joint order (no rclpy import)
- :mod:`vla_common.parameters` ``describe``: parameter descriptors (description, range, read-only);
  ``declare_robot_parameters``: the robot's parameters with one set of defaults
- :mod:`vla_common.robot`      the robot description (joints, bounds, speeds) read once from ``robot.yaml``
  (``vla_common/config/robot.yaml``, or ``$VLA_ROBOT_YAML``; no rclpy import)
- :mod:`vla_common.config_files` where a package's ``config/*.yaml`` is: its installed share directory,
  then the source tree (no rclpy import)
- :mod:`vla_common.files`      atomic file writes (bytes, text, JSON, any writer's path)
- :mod:`vla_common.stats`      success-rate statistics (Wilson interval; no rclpy import)
- :mod:`vla_common.testing`    ``GraphProbe``, the probe node tests and benchmarks drive a graph with
"""
