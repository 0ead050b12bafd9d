"""sim_node's achieved publish rate and CPU share over a window (default 60 s) versus the requested rate.

    ./run.sh bench bench_sim_node.py --seconds 60 --rate 30

Starts sim_node on a private ROS domain, records /joint_states and /camera/image_raw with a
sensor-data QoS subscriber in this process, and reads the node's CPU time from /proc.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from bench_recorder import group_usage  # the sibling script: CPU time of a process group
from vla_common.launching import NodeProcess, NodeSpec, isolated_ros_env
from vla_common.testing import GraphProbe, wait_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seconds', type=float, default=60.0, help='measurement window')
    parser.add_argument('--rate', type=float, default=30.0, help='requested rate (Hz)')
    parser.add_argument('--image-size', type=int, default=224)
    args = parser.parse_args(argv)

    env = isolated_ros_env()
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    proc = NodeProcess(NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node',
                                parameters={'rate': args.rate, 'image_size': args.image_size}), env=env)
    proc.start()
    probe = GraphProbe('bench_sim_node')
    try:
        states = probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
        images = probe.subscribe(Image, '/camera/image_raw', qos_profile_sensor_data)
        if not wait_for(lambda: len(states) > 30 and len(images) > 30, 60):
            print(f'sim_node did not publish:\n{proc.output()}', file=sys.stderr)
            return 1
        n_states, n_images = len(states), len(images)
        cpu0, t0 = group_usage(proc.pid)[1], time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = group_usage(proc.pid)[1], time.monotonic()
        window = t1 - t0
        state_times = np.array([t for t, _ in states[n_states:]])
        gaps = np.diff(state_times) * 1000.0
        state_rate = (len(states) - n_states) / window
        image_rate = (len(images) - n_images) / window
        print(f'window {window:.1f} s, requested {args.rate:g} Hz, image {args.image_size}x{args.image_size}')
        print(f'/joint_states      {state_rate:6.2f} Hz  ({100 * state_rate / args.rate:.1f}% of requested)')
        print(f'/camera/image_raw  {image_rate:6.2f} Hz  ({100 * image_rate / args.rate:.1f}% of requested)')
        print(f'inter-arrival      p50 {np.percentile(gaps, 50):.1f} ms, p99 {np.percentile(gaps, 99):.1f} ms, '
              f'max {gaps.max():.1f} ms')
        print(f'sim_node CPU share {100 * (cpu1 - cpu0) / window:.1f}% of one core')
    finally:
        probe.close()
        proc.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
