"""Logging a ROS-free core's lines through a node's logger.

The cores (the command gate, the safety monitor, the controller's loop) say what happened as
``(level, text)`` pairs instead of logging themselves; the node hands them to its logger::

    emit_log(self.get_logger(), output.log)
"""
from __future__ import annotations

from collections.abc import Iterable


def emit_log(logger, lines: Iterable[tuple[str, str]]) -> None:
    """Log ``(level, text)`` lines: 'error', 'warn' or 'warning', anything else as info."""
    for level, text in lines:
        # one call site per severity: rclpy refuses to change it between calls of a line
        if level == 'error':
            logger.error(text)
        elif level in ('warn', 'warning'):
            logger.warning(text)
        else:
            logger.info(text)
