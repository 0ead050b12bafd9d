"""Test-run isolation for every package's tests: one private ROS graph per pytest run."""
import os
import tempfile

# Set before any test imports rclpy or starts a node (child processes inherit it).
# A domain no other run on this machine holds (a demo or a second test run beside this one
# would otherwise share the graph): an flock kept while this pytest process lives.
from vla_common.launching import reserve_domain_id  # noqa: E402  (no rclpy import there)

os.environ['ROS_DOMAIN_ID'] = str(reserve_domain_id())
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOG_DIR'] = tempfile.mkdtemp(prefix='vla_test_ros_log_')
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ.setdefault('OMP_NUM_THREADS', '1')
