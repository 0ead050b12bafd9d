"""A probe node for tests and benchmarks: publishes to and records real topics of a ROS graph.

It plays the parts around the nodes under test (the robot's ``/joint_states``, a command
source, an operator calling services or setting parameters) on its own rclpy context, spinning
in a background thread, and records what it receives with arrival times so a test can wait for
a message and inspect it.  Nothing here fakes a node under test.  Every wait has a timeout.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from vla_common.launching import wait_for

__all__ = ['GraphProbe', 'wait_for']


#: parameters rclpy declares on every node (not the node's own)
RCLPY_PARAMETERS = ('use_sim_time', 'start_type_description_service')


def undescribed(descriptors: dict[str, Any]) -> list[str]:
    """The node's own parameters in ``descriptors`` (``GraphProbe.parameter_descriptors``) that
    have no description."""
    return sorted(name for name, d in descriptors.items()
                  if not d.description and name not in RCLPY_PARAMETERS and not name.startswith('qos_overrides.'))


class GraphProbe:
    """``with GraphProbe() as probe: probe.subscribe(...); wait_for(...)``."""

    def __init__(self, name: str = 'vla_test_probe') -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: dict[str, list[tuple[float, Any]]] = {}
        self.publishers: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down under the spinning thread
                if self._stop.is_set() or not self.context.ok():
                    return
                raise

    # -- topics ---------------------------------------------------------------------------------
    def subscribe(self, msg_type, topic: str, qos: QoSProfile | int = 10,
                  on_message: Callable[[Any], None] | None = None) -> list[tuple[float, Any]]:
        """Record every message on ``topic`` as ``(time.monotonic(), msg)``; returns the live
        list the messages are appended to (:meth:`clear` empties it in place)."""
        received = self.received.setdefault(topic, [])

        def record(msg) -> None:
            stamp = time.monotonic()
            with self.lock:
                received.append((stamp, msg))
            if on_message is not None:
                on_message(msg)
        self.node.create_subscription(msg_type, topic, record, qos)
        return received

    def messages(self, topic: str, since: float = 0.0) -> list:
        with self.lock:
            return [m for t, m in self.received.get(topic, []) if t >= since]

    def stamped(self, topic: str) -> list[tuple[float, Any]]:
        """A copy of the ``(arrival time, msg)`` pairs received on ``topic`` so far."""
        with self.lock:
            return list(self.received.get(topic, []))

    def clear(self, topic: str | None = None) -> None:
        with self.lock:
            for key in ([topic] if topic else list(self.received)):
                self.received.setdefault(key, []).clear()

    def publisher(self, msg_type, topic: str, qos: QoSProfile | int = 10):
        if topic not in self.publishers:
            self.publishers[topic] = self.node.create_publisher(msg_type, topic, qos)
        return self.publishers[topic]

    def publish(self, msg_type, topic: str, msg, qos: QoSProfile | int = 10) -> None:
        self.publisher(msg_type, topic, qos).publish(msg)

    def wait_for_subscribers(self, topics: Sequence[str], timeout: float = 20.0) -> bool:
        """Until each of our publishers on ``topics`` is matched by at least one subscriber."""
        return wait_for(lambda: all(self.publishers[t].get_subscription_count() > 0
                                    for t in topics), timeout)

    def wait_for_count(self, topic: str, count: int = 1, timeout: float = 20.0) -> bool:
        """Until ``count`` messages in all have arrived on ``topic``."""
        return wait_for(lambda: len(self.received.get(topic, ())) >= count, timeout)

    def wait_for_message(self, topic: str, predicate: Callable[[Any], bool] = lambda m: True,
                         timeout: float = 10.0, since: float = 0.0):
        """The first message on ``topic`` received after ``since`` that satisfies ``predicate``."""
        found: list = []

        def check() -> bool:
            found[:] = [m for m in self.messages(topic, since) if predicate(m)][:1]
            return bool(found)
        return found[0] if wait_for(check, timeout) else None

    # -- services -------------------------------------------------------------------------------
    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call a service and return its response (None when it did not answer in time)."""
        client = self.node.create_client(srv_type, name)
        try:
            # polled here: Client.wait_for_service sleeps in steps of 0.25 s
            if not wait_for(client.service_is_ready, timeout):
                return None
            future = client.call_async(request)
            return future.result() if wait_for(future.done, timeout) else None
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name: str, values: dict[str, Any], timeout: float = 10.0):
        """Set parameters of another node through its ``set_parameters`` service."""
        from rcl_interfaces.srv import SetParameters

        from vla_common.parameters import set_parameters_request
        return self.call(SetParameters, f'/{node_name}/set_parameters',
                         set_parameters_request(values), timeout)

    def parameter_descriptors(self, node_name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Every parameter of another node with its ``ParameterDescriptor`` (what
        ``ros2 param describe`` shows), through its ``list_parameters``/``describe_parameters``
        services; an empty dict when the node does not answer."""
        from rcl_interfaces.srv import DescribeParameters, ListParameters
        listed = self.call(ListParameters, f'/{node_name}/list_parameters', ListParameters.Request(), timeout)
        if listed is None:
            return {}
        names = list(listed.result.names)
        described = self.call(DescribeParameters, f'/{node_name}/describe_parameters',
                              DescribeParameters.Request(names=names), timeout)
        return {} if described is None else dict(zip(names, described.descriptors))

    # -- lifetime -------------------------------------------------------------------------------
    def timer(self, period: float, callback: Callable[[], None]):
        return self.node.create_timer(period, callback)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> GraphProbe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
