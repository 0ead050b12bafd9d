"""A probe node for tests and tools that watch a ROS graph: subscribe, publish, wait (with timeouts)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from vla_common.launching import wait_for


class RosProbe:
    """An rclpy node with its own executor; every wait has a timeout.

    ``probe.record('/joint_states', JointState)`` keeps (receive_time, msg) pairs in
    ``probe.messages['/joint_states']``.
    """

    def __init__(self, name: str = 'vla_probe') -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = Node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.messages: dict[str, list[tuple[float, Any]]] = {}

    def record(self, topic: str, msg_type, qos: Any = 10) -> list[tuple[float, Any]]:
        received = self.messages.setdefault(topic, [])
        self.node.create_subscription(
            msg_type, topic, lambda msg: received.append((time.monotonic(), msg)), qos)
        return received

    def publisher(self, topic: str, msg_type, qos: Any = 10):
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_once(self, timeout: float = 0.02) -> None:
        self.executor.spin_once(timeout_sec=timeout)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.spin_once()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return wait_for(predicate, timeout, self.spin_once)

    def wait_for_messages(self, topic: str, count: int = 1, timeout: float = 20.0) -> bool:
        return self.wait_for(lambda: len(self.messages.get(topic, ())) >= count, timeout)

    def call(self, client, request, timeout: float = 10.0):
        """Call a service (waiting for it first); raises TimeoutError naming the service."""
        if not self.wait_for(client.service_is_ready, timeout):
            raise TimeoutError(f'service {client.srv_name} not available within {timeout} s')
        future = client.call_async(request)
        if not self.wait_for(future.done, timeout):
            raise TimeoutError(f'service {client.srv_name} did not answer within {timeout} s')
        return future.result()

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()
