"""sim_node on a real ROS graph: topics, rate, following commands, resets and bad input."""
import json
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_common.launching import NodeProcess, NodeSpec
from vla_common.testing import GraphProbe, undescribed, wait_for

pytestmark = pytest.mark.ros
JOINTS = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
COMMAND_TOPIC = '/joint_trajectory_controller/joint_trajectory'


@pytest.fixture(scope='module')
def sim():
    proc = NodeProcess(NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node',
                                parameters={'task': 'pick_red', 'seed': 4, 'image_size': 96}))
    proc.start()
    probe = GraphProbe('sim_node_test_probe')
    try:
        probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
        probe.subscribe(Image, '/camera/image_raw', qos_profile_sensor_data)
        probe.subscribe(String, '/sim/task_status')
        probe.subscribe(DiagnosticArray, '/diagnostics')
        if not probe.wait_for_count('/joint_states', 5, timeout=60):
            pytest.fail(f'sim_node published no joint states:\n{proc.output()}')
        yield proc, probe
    finally:
        probe.close()
        proc.stop()


def latest_positions(probe):
    msg = probe.messages('/joint_states')[-1]
    return np.array([msg.position[list(msg.name).index(n)] for n in JOINTS])


def command(positions, names=JOINTS, seconds=0.5):
    msg = JointTrajectory(joint_names=list(names))
    point = JointTrajectoryPoint(positions=[float(p) for p in positions])
    point.time_from_start = Duration(sec=int(seconds), nanosec=int((seconds % 1) * 1e9))
    msg.points = [point]
    return msg


def test_parameters_are_described_and_start_up_ones_read_only(sim):
    proc, probe = sim
    descriptors = probe.parameter_descriptors('sim_node')
    assert 'lockstep' in descriptors and undescribed(descriptors) == []
    assert descriptors['rate'].read_only and not descriptors['task'].read_only
    assert descriptors['image_size'].integer_range[0].from_value == 8
    refused = probe.set_parameters('sim_node', {'rate': 60.0}).results[0]
    assert not refused.successful and 'read-only' in refused.reason


def test_publishes_images_joint_states_and_status_at_rate(sim):
    proc, probe = sim
    n0 = len(probe.messages('/joint_states'))
    t0 = probe.stamped('/joint_states')[-1][0]
    time.sleep(2.0)
    states = probe.stamped('/joint_states')[n0:]
    rate = len(states) / (states[-1][0] - t0)
    assert 20.0 < rate < 40.0, f'joint_states at {rate:.1f} Hz, expected about 30'
    assert list(states[-1][1].name) == JOINTS
    image = probe.messages('/camera/image_raw')[-1]
    assert (image.height, image.width, image.encoding, image.step) == (96, 96, 'rgb8', 96 * 3)
    assert len(image.data) == 96 * 96 * 3
    status = json.loads(probe.messages('/sim/task_status')[-1].data)
    assert status['task'] == 'pick_red' and status['seed'] == 4
    assert status['instruction'] == 'pick up the red cube'
    assert set(status['objects']) == {'red_cube', 'green_cube', 'blue_cube'}
    assert proc.alive()


def test_follows_a_trajectory_command(sim):
    proc, probe = sim
    pub = probe.publisher(JointTrajectory, COMMAND_TOPIC)
    start = latest_positions(probe)
    goal = start.copy()
    goal[0] += 0.3
    goal[6] = 0.02
    wait_for(lambda: pub.get_subscription_count() > 0, 10)
    pub.publish(command(goal, seconds=0.5))
    reached = wait_for(lambda: np.abs(latest_positions(probe)[[0, 6]] - goal[[0, 6]]).max()
                       < 0.01, timeout=10)
    assert reached, f'arm at {latest_positions(probe)}, commanded {goal}'


@pytest.mark.parametrize('bad', ['unknown_joint', 'missing_joint', 'nan', 'length', 'out_of_range'])
def test_bad_commands_are_rejected_and_the_node_keeps_running(sim, bad):
    proc, probe = sim
    pub = probe.publisher(JointTrajectory, COMMAND_TOPIC)
    wait_for(lambda: pub.get_subscription_count() > 0, 10)
    hold = latest_positions(probe)
    target = hold.copy()
    names = list(JOINTS)
    if bad == 'unknown_joint':
        names[0] = 'elbow_of_another_robot'
    elif bad == 'missing_joint':
        names, target = names[:6], target[:6]
    elif bad == 'nan':
        target[2] = float('nan')
    elif bad == 'length':
        target = target[:5]
    elif bad == 'out_of_range':
        target[1] = 50.0  # clipped to the joint bound by default
    pub.publish(command(target, names=names, seconds=0.1))
    time.sleep(1.0)
    assert proc.alive(), proc.output()
    now = latest_positions(probe)
    assert np.all(np.isfinite(now))
    if bad == 'out_of_range':
        assert 'clipped' in proc.output()
        assert now[1] <= 1.58
    else:
        assert np.abs(now - hold).max() < 0.05, 'a rejected command must not move the arm'
        assert 'rejected trajectory' in proc.output()


def test_reset_to_a_task_and_seed_and_unknown_task_lists_valid_ones(sim):
    proc, probe = sim

    def set_task(task):
        return probe.set_parameters('sim_node', {'task': task, 'seed': 9}).results

    refused = set_task('fly_to_the_moon')[0]
    assert not refused.successful
    assert 'pick_red' in refused.reason and 'stack_green_on_red' in refused.reason
    assert all(r.successful for r in set_task('stack_green_on_red'))
    answer = probe.call(Trigger, '/sim/reset', Trigger.Request())
    assert answer.success, answer.message
    assert wait_for(lambda: json.loads(probe.messages('/sim/task_status')[-1].data)
                    ['task'] == 'stack_green_on_red', 10)
    status = json.loads(probe.messages('/sim/task_status')[-1].data)
    assert status['seed'] == 9 and status['instruction'] == 'put the green cube on the red cube'
    assert status['step'] < 30 and not status['done']


def test_a_workbench_task_loads_the_workbench_and_a_cube_task_the_table_again(sim):
    proc, probe = sim

    def reset_to(task):
        assert all(r.successful for r in probe.set_parameters('sim_node', {'task': task, 'seed': 2}).results)
        answer = probe.call(Trigger, '/sim/reset', Trigger.Request())
        assert answer.success, answer.message
        assert wait_for(lambda: json.loads(probe.messages('/sim/task_status')[-1].data)
                        ['task'] == task, 20), proc.output()
        return json.loads(probe.messages('/sim/task_status')[-1].data)

    status = reset_to('push_to_goal')
    assert status['instruction'] == 'push the blue puck onto the green goal'
    assert {'puck', 'goal'} <= set(status['objects']) and status['cameras'] == ['front']
    status = reset_to('pick_red')
    assert set(status['objects']) == {'red_cube', 'green_cube', 'blue_cube'}


def test_diagnostics_name_the_sim_and_its_counters_in_order(sim):
    proc, probe = sim
    assert wait_for(lambda: probe.messages('/diagnostics'), 30), proc.output()
    (status,) = probe.messages('/diagnostics')[-1].status
    assert (status.name, status.hardware_id, status.level, status.message) == (
        'vla_sim: sim_node', 'mujoco', DiagnosticStatus.OK, 'running')
    values = {kv.key: kv.value for kv in status.values}
    assert [kv.key for kv in status.values] == [
        'task', 'seed', 'episode', 'wall_tick_rate_hz', 'ticks', 'rejected_commands',
        'clipped_commands', 'stale_commands', 'mode', 'paused', 'lockstep_timeouts', 'success']
    assert values['mode'] == 'real_time' and values['paused'] == 'False'
