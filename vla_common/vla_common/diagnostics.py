"""``/diagnostics``: one status per node, built from a level, a message and named values.

Every node of the suite publishes a ``diagnostic_msgs/DiagnosticArray`` holding one
``DiagnosticStatus`` (``name`` 'package: node', a ``hardware_id``, key/value pairs as strings),
stamped with the node clock.  The node decides what to say; this module builds and sends it::

    self.diagnostics = DiagnosticsPublisher(self, 'vla_safety: command_gate', 'command_gate')
    self.diagnostics.publish('warn', 'no /joint_states yet', {'forwarded': 0})
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: the topic every node publishes its status on
DIAGNOSTICS_TOPIC = '/diagnostics'

#: level names -> DiagnosticStatus levels
LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
          'error': DiagnosticStatus.ERROR, 'stale': DiagnosticStatus.STALE}

Values = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _level(level: str | bytes | int) -> bytes:
    if isinstance(level, str):
        try:
            return LEVELS[level.lower()]
        except KeyError:
            raise ValueError(f'unknown diagnostic level {level!r}; expected one of '
                             f'{sorted(LEVELS)}') from None
    if isinstance(level, int):
        return bytes([level])
    return level


def diagnostic_status(name: str, level: str | bytes | int, message: str, values: Values = (),
                      hardware_id: str = '') -> DiagnosticStatus:
    """A DiagnosticStatus; ``level`` is 'ok', 'warn', 'error', 'stale' or a DiagnosticStatus
    level, ``values`` a mapping or ``(key, value)`` pairs (in order; each value as ``str``)."""
    pairs = values.items() if isinstance(values, Mapping) else values
    return DiagnosticStatus(level=_level(level), name=name, message=str(message),
                            hardware_id=hardware_id,
                            values=[KeyValue(key=str(k), value=str(v)) for k, v in pairs])


class DiagnosticsPublisher:
    """Publishes one node's status on ``/diagnostics``, stamped with the node clock."""

    def __init__(self, node, name: str, hardware_id: str = '', *, depth: int = 10,
                 topic: str = DIAGNOSTICS_TOPIC) -> None:
        self.node = node
        self.name = name
        self.hardware_id = hardware_id
        self.publisher = node.create_publisher(DiagnosticArray, topic, depth)

    def publish(self, level: str | bytes | int, message: str, values: Values = (), *,
                hardware_id: str | None = None, stamp=None) -> DiagnosticArray:
        """Build the status and publish it; returns the message sent.  ``stamp`` (a
        ``builtin_interfaces/Time``) replaces the node clock's now, for a node that keeps its
        own clock (the simulator stamps with the sim time it publishes on ``/clock``)."""
        status = diagnostic_status(self.name, level, message, values,
                                   self.hardware_id if hardware_id is None else hardware_id)
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg() if stamp is None else stamp
        self.publisher.publish(msg)
        return msg
