"""MonitorCore and the heartbeat format over simulated time, without a ROS graph."""
import math

import pytest

from vla_safety.heartbeat import Heartbeat, HeartbeatError, stop_request
from vla_safety.monitor import MonitorConfig, MonitorCore
from vla_safety.rules import SafetyLimits

J = ['a', 'b']


def make(**kwargs) -> MonitorCore:
    limits = SafetyLimits.from_values(J, [-3, -3], [3, 3], [2, 2], position_limit=1.0,
                                      velocity_limit=2.0)
    return MonitorCore(MonitorConfig(limits=limits, joint_state_timeout=0.5, **kwargs),
                       session='abc')


def test_velocity_is_estimated_from_positions_when_the_driver_sends_none():
    monitor = make()
    assert monitor.on_joint_state(J, [0.0, 0.0], [], 1.0, 0.0).estop is None
    assert monitor.on_joint_state(J, [0.05, 0.0], [], 1.033, 0.01).estop is None  # 1.5 rad/s
    out = monitor.on_joint_state(J, [0.15, 0.0], [], 1.066, 0.02)  # 3 rad/s
    assert out.estop and 'joint velocity limit: a' in out.estop


def test_nan_velocity_uses_the_estimate_and_never_latches_for_good():
    monitor = make()
    monitor.on_joint_state(J, [0.0, 0.0], [math.nan, 0.0], 1.0, 0.0)
    out = monitor.on_joint_state(J, [0.01, 0.0], [math.nan, 0.0], 1.033, 0.03)
    assert out.estop is None and monitor.faults.counts['non-finite joint velocity'] == 2
    # a NaN position is a violation; the reset works once finite positions are back
    assert monitor.on_joint_state(J, [math.nan, 0.0], [0.0, 0.0], 1.066, 0.06).estop
    ok, why, _ = monitor.reset(0.07)
    assert not ok and 'persists' in why
    monitor.on_joint_state(J, [0.01, 0.0], [math.nan, 0.0], 1.1, 0.1)
    ok, why, out = monitor.reset(0.11)
    assert ok and out.estop == '' and monitor.heartbeat().resets == 1


def test_watchdog_trigger_stop_request_and_heartbeat_sequence():
    monitor = make()
    assert monitor.watchdog(10.0).estop is None  # armed by the first state
    assert not monitor.heartbeat().watching  # ... and blind until then: the gate holds
    monitor.on_joint_state(J, [0.0, 0.0], [0.0, 0.0], None, 0.0)
    assert 'no usable /joint_states' in monitor.watchdog(0.6).estop
    first = monitor.heartbeat()
    assert first.stopped and first.watching and first.seq == 1 and monitor.heartbeat().seq == 2
    assert monitor.on_stop_request('ignored while stopped').estop is None
    monitor.on_joint_state(J, [0.0, 0.0], [0.0, 0.0], None, 0.7)
    assert monitor.reset(0.71)[0]
    # a request made before the last reset (still in flight) or for another session is stale
    assert monitor.on_stop_request(stop_request('late', 'abc', 0)).estop is None
    assert monitor.on_stop_request(stop_request('other', 'xyz', 1)).estop is None
    out = monitor.on_stop_request(stop_request('heartbeat lost', 'abc', 1))
    assert out.estop == 'command gate: heartbeat lost'
    monitor.on_joint_state(J, [0.0, 0.0], [0.0, 0.0], None, 0.8)
    assert monitor.reset(0.81)[0]
    assert monitor.on_stop_request('command gate lost the heartbeat').estop.startswith('command gate')
    assert monitor.trigger('manual')[0].startswith('already stopped')


def test_start_latched_and_limits_can_only_be_tightened():
    monitor = make(start_latched=True)
    assert monitor.start().estop.startswith('started latched')
    assert 'only be tightened' in monitor.set_parameters({'position_limit': [3.5, 3.5]})
    assert 'read at start-up only' in monitor.set_parameters({'check_rate': 10.0})
    assert monitor.set_parameters({'velocity_limit': 1.0}) is None
    assert monitor.config.limits.velocity_limit.tolist() == [1.0, 1.0]


def test_heartbeat_json_round_trip_and_errors():
    beat = Heartbeat(session='abc', seq=3, stopped=True, reason='x', resets=2)
    assert Heartbeat.from_json(beat.to_json()) == beat
    # 'watching' is optional (monitors before it): absent reads as True
    old = '{"protocol":1,"session":"a","seq":0,"stopped":false,"reason":"","resets":0}'
    assert Heartbeat.from_json(old).watching
    with pytest.raises(HeartbeatError, match="'watching' must be bool"):
        Heartbeat.from_json(old[:-1] + ',"watching":1}')
    for text, message in [('nope', 'not JSON'), ('{"protocol": 2}', 'protocol 1'),
                          ('{"protocol":1,"session":"a","seq":true,"stopped":false,"reason":"",'
                           '"resets":0}', "'seq' must be int")]:
        with pytest.raises(HeartbeatError, match=message):
            Heartbeat.from_json(text)
