"""Fault injection into command gates of their own, beside the shared graph of
``test_fault_injection.py``: SIGINT/SIGTERM, a simulated clock that jumps back, the operator's
deadman (each gate's topics under a namespace of its own, ``require_monitor: false``)."""
import dataclasses
import math
import os
import signal
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time as TimeMsg
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool
from trajectory_msgs.msg import JointTrajectory

from fault_injection_support import (FILES, LOWER, TICK, UPPER, FollowingRobot, check_path, command,
                                     forwarded, outputs, private_gate, seconds, send)
from vla_common.launching import NodeProcess, NodeSpec
from vla_common.testing import GraphProbe, wait_for

pytestmark = pytest.mark.ros


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_gate_sends_its_hold_on_sigint_and_sigterm(sig):
    spec = NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate',
                    param_files=FILES, parameters={'require_monitor': False})
    # a graph of its own beside the module's (whose nodes may still run)
    ns = f'/signal_test_{int(sig)}'
    topics = (f'{ns}/command', f'{ns}/robot')
    spec = dataclasses.replace(
        spec, parameters={**spec.parameters, 'input_topic': topics[0], 'output_topic': topics[1]},
        remappings=tuple((t, ns + t) for t in ('/joint_states', '/emergency_stop',
                                               '/safety/heartbeat', '/safety/stop_request')))
    gate = NodeProcess(spec).start()
    probe = GraphProbe(f'signal_probe_{int(sig)}')
    try:
        robot = FollowingRobot(probe, topic=topics[1], states=f'{ns}/joint_states')
        probe.publisher(JointTrajectory, topics[0])
        assert forwarded(probe, command(robot.q + 0.01), 30.0, topics) is not None, gate.output()
        since = time.monotonic()
        os.killpg(gate.pid, sig)
        assert wait_for(lambda: not gate.alive(), 10.0), gate.output()
        assert gate.returncode == 0, gate.output()
        held = outputs(probe, since, topics[1])
        assert held, 'no hold reached the robot: ' + gate.output()
        assert 'controlled stop' in gate.output()
        check_path(held)
    finally:
        probe.close()
        gate.stop()


def test_sim_clock_jumping_back_holds_until_a_fresh_state_and_moves_nothing_back():
    gate, ns, topics = private_gate('clock_jump_test', {'use_sim_time': True})
    probe = GraphProbe('clock_jump_probe')
    sim = {'t': 100.0, 'offset': 0.0}  # the timer alone writes t, the test alone the offset

    def tick_clock():
        sim['t'] += 0.01
        now = sim['t'] + sim['offset']
        sec = math.floor(now)
        probe.publish(Clock, f'{ns}/clock', Clock(clock=TimeMsg(
            sec=sec, nanosec=int((now - sec) * 1e9))))
    try:
        probe.timer(0.01, tick_clock)
        robot = FollowingRobot(probe, topic=topics[1], states=f'{ns}/joint_states')
        probe.publisher(JointTrajectory, topics[0])
        assert forwarded(probe, command(robot.q), 30.0, topics) is not None, gate.output()
        target = np.clip(robot.q + 0.5, LOWER, UPPER)
        for _ in range(10):
            probe.publish(JointTrajectory, topics[0], command(target, TICK))
            time.sleep(TICK)
        jumped_from = sim['t']
        sim['offset'] = -50.0  # a simulator reset: the clock jumps back
        assert wait_for(lambda: 'clock jumped back' in gate.output(), 10.0), gate.output()
        since = time.monotonic()
        after = forwarded(probe, command(target, TICK), 10.0, topics)
        assert after is not None, gate.output()  # a fresh state came: it forwards again
        for _ in range(10):
            probe.publish(JointTrajectory, topics[0], command(target, TICK))
            time.sleep(TICK)
        wait_for(lambda: False, 0.1)
        received = outputs(probe, since, topics[1])
        # stamped in the new (earlier) time; from where the robot is, at no more than the limit
        assert received and all(seconds(m.header.stamp) < jumped_from - 40.0
                                for _, m in received), received
        check_path(received)
        assert gate.alive(), gate.output()
    finally:
        probe.close()
        gate.stop()


def test_operator_deadman_released_or_silent_holds_and_held_again_forwards():
    gate, ns, topics = private_gate('deadman_test', {'deadman_topic': '/operator/deadman',
                                                     'deadman_timeout': 0.3})
    probe = GraphProbe('deadman_probe')
    deadman = {'pressed': True, 'publishing': True}

    def press():
        if deadman['publishing']:
            probe.publish(Bool, '/operator/deadman', Bool(data=deadman['pressed']))
    try:
        probe.timer(0.05, press)
        robot = FollowingRobot(probe, topic=topics[1], states=f'{ns}/joint_states')
        probe.publisher(JointTrajectory, topics[0])
        assert forwarded(probe, command(robot.q + 0.01), 30.0, topics) is not None, gate.output()
        def count(text):
            return gate.output(max_chars=10 ** 6).count(text)
        for how in ('publishing', 'pressed'):  # silent, then released (false)
            holds = count('deadman released or silent: holding')
            deadman[how] = False
            assert wait_for(lambda: count('deadman released or silent: holding') > holds, 10.0), \
                gate.output()
            wait_for(lambda: False, 0.1)
            assert send(probe, command(robot.q + 0.01), 0.3, topics) is None, how
            deadman[how] = True
            assert forwarded(probe, command(robot.q + 0.01), 10.0, topics) is not None, how
        assert count('operator deadman held') >= 2, gate.output()
        assert gate.alive(), gate.output()
    finally:
        probe.close()
        gate.stop()
