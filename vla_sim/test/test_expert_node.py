"""scripted_expert on a real ROS graph: bad joint states are refused with a warning, the node keeps
running and commands once a usable state arrives."""
import json
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from vla_common.launching import NodeProcess, NodeSpec
from vla_common.testing import GraphProbe, undescribed, wait_for
from vla_sim import SimEnv
from vla_sim.expert import QUIET_PHASES
from vla_sim.expert_node import quiet_phases

pytestmark = pytest.mark.ros


def status_without_joints() -> str:
    """A /sim/task_status as an older simulator sent it (no joint positions: /joint_states is used)."""
    env = SimEnv(image_size=32, render_images=False)
    env.reset(task='pick_red', seed=1)
    state = env.privileged_state()
    return json.dumps({'episode': 1, 'task': 'pick_red', 'objects': {
        name: {'pos': np.asarray(o['pos']).tolist(), 'quat': np.asarray(o['quat']).tolist()}
        for name, o in state['objects'].items()}}), env.joint_positions().tolist()


def test_joint_state_with_fewer_positions_than_names_is_refused_not_fatal():
    status, q = status_without_joints()
    proc = NodeProcess(NodeSpec('vla_sim', 'scripted_expert', 'vla_sim.expert_node',
                                'scripted_expert')).start()
    probe = GraphProbe('expert_node_test_probe')
    try:
        commands = probe.subscribe(JointTrajectory, '/vla/command')
        joints = probe.publisher(JointState, '/joint_states')
        status_pub = probe.publisher(String, '/sim/task_status')
        assert wait_for(lambda: joints.get_subscription_count() > 0
                        and status_pub.get_subscription_count() > 0, 30), proc.output()
        names = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
        for _ in range(10):
            status_pub.publish(String(data=status))
            joints.publish(JointState(name=names, position=q[:3]))  # 3 positions for 7 names
            time.sleep(0.1)
        assert proc.alive(), proc.output()
        assert 'refused /joint_states: joint state has 3 positions for 7 names' in proc.output()
        assert not commands, 'no command without a usable joint state'
        joints.publish(JointState(name=names, position=q))
        assert wait_for(lambda: len(commands) > 0, 10), proc.output()
        assert np.all(np.isfinite(commands[-1][1].points[0].positions))
        descriptors = probe.parameter_descriptors('scripted_expert')
        assert 'noise' in descriptors and undescribed(descriptors) == []
    finally:
        probe.close()
        proc.stop()


def test_executed_noise_spares_the_precise_phases_of_each_scene():
    assert quiet_phases('pick_red') == QUIET_PHASES == ('close', 'place', 'release')
    assert {'descend', 'press', 'push', 'close', 'insert'} == set(quiet_phases('insert_peg'))
    assert quiet_phases('no_such_task') == QUIET_PHASES
