"""Stopping a node on SIGINT/SIGTERM without an exception landing inside rclpy.

rclpy's own signal handler shuts the context down before a node's ``finally`` could publish a
last message (a final hold), and Python's default SIGINT handler raises ``KeyboardInterrupt``
wherever the main thread happens to be, which can be inside rclpy's executor code that catches
and drops it: the node then spins on and is only ended by the SIGTERM that follows. A flag set by
the handler ends the spin loop instead.  Call ``rclpy.init(signal_handler_options=
SignalHandlerOptions.NO)`` first.
"""
from __future__ import annotations

import signal
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def spin_until_signalled(node: Any, poll: float = 0.1) -> str | None:
    """Spin ``node`` until SIGINT or SIGTERM (the name is returned) or rclpy shuts down (None).

    The handlers are installed here and a second signal after the first is ignored, so the
    caller's clean-up (a final hold) is not cut short; the signal wakes the loop within ``poll`` s.
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not received:
            received.append(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not received and rclpy.ok():
            executor.spin_once(timeout_sec=poll)
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        executor.remove_node(node)
        executor.shutdown()
    return signal.Signals(received[0]).name if received else None
