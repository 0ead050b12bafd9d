"""The /diagnostics helper: a status from a level, a message and values, stamped and published."""
from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from vla_common.diagnostics import DIAGNOSTICS_TOPIC, DiagnosticsPublisher, diagnostic_status


def test_status_keeps_the_order_of_its_values_as_strings():
    status = diagnostic_status('vla_x: node', 'warn', 'no /joint_states yet',
                               [('forwarded', 3), ('latched', 'none'), ('rate', 29.5)], 'node')
    assert status.level == DiagnosticStatus.WARN and status.name == 'vla_x: node'
    assert status.message == 'no /joint_states yet' and status.hardware_id == 'node'
    assert [(kv.key, kv.value) for kv in status.values] == [
        ('forwarded', '3'), ('latched', 'none'), ('rate', '29.5')]
    from_dict = diagnostic_status('n', 'ok', 'ok', {'b': 1, 'a': None})
    assert [(kv.key, kv.value) for kv in from_dict.values] == [('b', '1'), ('a', 'None')]


@pytest.mark.parametrize('level, expected', [
    ('ok', DiagnosticStatus.OK), ('WARN', DiagnosticStatus.WARN), ('error', DiagnosticStatus.ERROR),
    ('stale', DiagnosticStatus.STALE), (DiagnosticStatus.ERROR, DiagnosticStatus.ERROR), (1, DiagnosticStatus.WARN),
])
def test_levels_by_name_or_value(level, expected):
    assert diagnostic_status('n', level, '').level == expected


def test_an_unknown_level_is_named():
    with pytest.raises(ValueError, match="unknown diagnostic level 'fine'"):
        diagnostic_status('n', 'fine', '')


class _FakeNode:
    """What DiagnosticsPublisher uses of a node: create_publisher and the clock."""

    def __init__(self):
        self.created, self.sent = [], []

    def create_publisher(self, msg_type, topic, depth):
        self.created.append((msg_type, topic, depth))
        return self

    def publish(self, msg):
        self.sent.append(msg)

    def get_clock(self):
        return self

    def now(self):
        return self

    def to_msg(self):
        return Time(sec=12, nanosec=5)


def test_publisher_sends_one_stamped_status_per_call():
    node = _FakeNode()
    diagnostics = DiagnosticsPublisher(node, 'vla_safety: command_gate', 'command_gate')
    assert node.created == [(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)]
    sent = diagnostics.publish('error', 'emergency stop: test', {'estops': 1})
    assert node.sent == [sent] and (sent.header.stamp.sec, sent.header.stamp.nanosec) == (12, 5)
    (status,) = sent.status
    assert (status.name, status.hardware_id, status.level) == ('vla_safety: command_gate', 'command_gate',
                                                               DiagnosticStatus.ERROR)
    assert [(kv.key, kv.value) for kv in status.values] == [('estops', '1')]
    assert diagnostics.publish('ok', 'ok', hardware_id='arm').status[0].hardware_id == 'arm'


def test_publisher_takes_a_given_stamp_over_the_node_clock():
    node = _FakeNode()
    diagnostics = DiagnosticsPublisher(node, 'vla_sim: sim_node', 'mujoco')
    sent = diagnostics.publish('ok', 'running', [('task', 'pick_red')], stamp=Time(sec=3, nanosec=7))
    assert (sent.header.stamp.sec, sent.header.stamp.nanosec) == (3, 7)
