"""sim_node in lock-step on a real ROS graph: a tick advances on its command (or a timeout that
names the silent topic), acknowledgements are waited for, pause holds the clock."""
import json
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Header, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_common.launching import NodeProcess, NodeSpec
from vla_common.testing import GraphProbe, wait_for

pytestmark = pytest.mark.ros
JOINTS = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
COMMAND_TOPIC = '/joint_trajectory_controller/joint_trajectory'
ACK_TOPIC = '/test_recorder/tick'
DT = 1.0 / 30.0


@pytest.fixture(scope='module')
def sim():
    proc = NodeProcess(NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node', parameters={
        'task': 'pick_red', 'seed': 4, 'image_size': 32, 'lockstep': True,
        'lockstep_timeout': 0.2, 'lockstep_ack_timeout': 0.2, 'lockstep_acks': [ACK_TOPIC]}))
    proc.start()
    probe = GraphProbe('sim_lockstep_probe')
    try:
        probe.subscribe(String, '/sim/task_status')
        probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
        probe.command = probe.publisher(JointTrajectory, COMMAND_TOPIC)
        probe.ack = probe.publisher(Header, ACK_TOPIC)
        if not probe.wait_for_count('/sim/task_status', 2, timeout=60):
            pytest.fail(f'sim_node published no status:\n{proc.output()}')
        wait_for(lambda: probe.command.get_subscription_count() > 0
                 and probe.ack.get_subscription_count() > 0, 20)
        yield proc, probe
    finally:
        probe.close()
        proc.stop()


def status(probe) -> dict:
    return json.loads(probe.messages('/sim/task_status')[-1].data)


def stamp_msg(seconds: float):
    header = Header()
    header.stamp.sec, header.stamp.nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    return header


def command(positions, stamp: float) -> JointTrajectory:
    msg = JointTrajectory(joint_names=JOINTS)
    msg.header = stamp_msg(stamp)
    msg.points = [JointTrajectoryPoint(positions=[float(p) for p in positions],
                                       time_from_start=Duration(sec=0, nanosec=int(DT * 1e9)))]
    return msg


def set_paused(probe, paused: bool) -> None:
    result = probe.set_parameters('sim_node', {'paused': paused})
    assert result.results[0].successful, result.results[0].reason


def test_silent_graph_steps_on_the_timeout_and_names_the_silent_topics(sim):
    proc, probe = sim
    n = len(probe.messages('/sim/task_status'))
    time.sleep(1.5)  # nobody answers: one tick per 0.2 s timeout, never a hang
    new = [json.loads(m.data) for m in probe.messages('/sim/task_status')[n:]]
    assert 2 <= len(new) <= 12, len(new)
    last = new[-1]
    assert last['mode'] == 'lockstep' and last['silent_ticks'] >= 2
    assert set(last['silent']) == {COMMAND_TOPIC, ACK_TOPIC}
    assert 'no answer to tick' in proc.output() and COMMAND_TOPIC in proc.output()


def test_each_answered_tick_advances_exactly_one_step_towards_its_command(sim):
    proc, probe = sim
    set_paused(probe, True)
    time.sleep(0.3)
    start = status(probe)
    target = np.asarray(start['joint_positions'])
    target[0] += 0.03
    for i in range(5):
        now = status(probe)
        assert now['step'] == start['step'] + i and now['silent_ticks'] == 0 or i == 0
        n = len(probe.messages('/sim/task_status'))
        probe.command.publish(command(target, now['stamp']))
        probe.ack.publish(stamp_msg(now['stamp']))
        if i == 0:  # paused: the answers wait, the clock does not move
            time.sleep(0.5)
            assert status(probe)['stamp'] == now['stamp']
            set_paused(probe, False)
        assert wait_for(lambda: len(probe.messages('/sim/task_status')) > n, 5)
        after = status(probe)
        assert after['stamp'] == pytest.approx(now['stamp'] + DT, abs=1e-6)
        assert after['step'] == now['step'] + 1
    # a one-tick trajectory is the target at the end of the step it answers
    assert abs(status(probe)['joint_positions'][0] - target[0]) < 0.02
    assert proc.alive()


def test_an_answer_stamped_for_an_older_tick_does_not_count(sim):
    proc, probe = sim
    now = status(probe)
    n = len(probe.messages('/sim/task_status'))
    probe.command.publish(command(now['joint_positions'], now['stamp'] - DT))
    probe.ack.publish(stamp_msg(now['stamp']))
    time.sleep(0.1)  # well within the 0.2 s timeout: no step on a stale answer
    assert len(probe.messages('/sim/task_status')) == n
    assert wait_for(lambda: len(probe.messages('/sim/task_status')) > n, 5)
    assert status(probe)['silent'] == [COMMAND_TOPIC]  # the step came from the timeout


def test_paused_sim_keeps_its_joint_states_alive_without_advancing(sim):
    proc, probe = sim
    set_paused(probe, True)
    time.sleep(0.3)
    before = status(probe)
    n = len(probe.messages('/joint_states'))
    time.sleep(1.0)
    assert status(probe)['stamp'] == before['stamp']
    restated = probe.stamped('/joint_states')[n:]
    assert len(restated) >= 5  # the safety monitor's wall-clock watchdog sees the robot
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in restated]
    assert stamps == pytest.approx([before['stamp']] * len(stamps), abs=1e-6)
    set_paused(probe, False)
