"""vla_controller with a checkpoint of end-effector actions, as real nodes over real DDS: the
simulator on a workbench task, the command gate and monitor, and the controller turning each
end-effector delta into joint targets before the gate."""
import dataclasses

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from vla_bringup.scenarios import (REQUEST_TOPIC, ROBOT_COMMAND_TOPIC, controller_nodes, robot_nodes,
                                   safety_nodes)
from vla_common.launching import NodeGroup
from vla_common.testing import GraphProbe

pytestmark = pytest.mark.ros
JOINTS = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
SIZE = 64
TASK = 'reach_marker'
# tiny steps: about 1 mm a tick up and along +x (a few cm over the test), gripper half open; the
# random model's spread is ~1e-3 x its raw output (0.5-1): 1e-3 is the action normalisation's floor
STEP = [0.001, 0.0, 0.001, 0.0, 0.0, 0.0, 0.04]
SPREAD = 1e-3


def diagnostics(probe, name, predicate, timeout):
    """The next ``/diagnostics`` values of status ``name`` satisfying ``predicate`` (or None)."""
    probe.clear('/diagnostics')

    def values(msg):
        return [{**{kv.key: kv.value for kv in s.values}, 'message': s.message}
                for s in msg.status if s.name == name]
    msg = probe.wait_for_message('/diagnostics', lambda m: any(predicate(v) for v in values(m)),
                                 timeout)
    return None if msg is None else next(v for v in values(msg) if predicate(v))


@pytest.mark.parametrize('execution', [
    {}, pytest.param({'inference': 'async', 'plan_points': 3}, marks=pytest.mark.slow)])
def test_an_end_effector_checkpoint_drives_the_simulated_arm_through_the_gate(tmp_path, execution):
    """Synchronous inference; and asynchronous with the plan's next 3 points (deltas integrated
    on a copy of the commanded pose) in each command."""
    from vla_policy.testing import make_tiny_checkpoint
    from vla_sim import ALL_TASKS, EE_ACTION_NAMES, ArmKinematics
    ckpt = make_tiny_checkpoint(tmp_path / 'ee', joint_names=JOINTS, action_names=EE_ACTION_NAMES,
                                image_size=SIZE, action_mean=STEP, action_std=SPREAD,
                                chunk_size=12, n_action_steps=4)
    sim = [dataclasses.replace(s, parameters={**s.parameters, 'image_size': SIZE})
           for s in robot_nodes({'use_sim': True, 'task': TASK})]
    ctl = [dataclasses.replace(spec, parameters={**spec.parameters, **execution}) for spec in
           controller_nodes({'checkpoint': str(ckpt), 'command': ALL_TASKS[TASK].instruction})]
    probe = GraphProbe('ee_controller_test_probe')
    group = None
    try:
        probe.subscribe(DiagnosticArray, '/diagnostics', 50)
        probe.subscribe(JointTrajectory, REQUEST_TOPIC)
        probe.subscribe(JointTrajectory, ROBOT_COMMAND_TOPIC)
        probe.subscribe(JointState, '/joint_states', qos_profile_sensor_data)
        group = NodeGroup([*sim, *safety_nodes({}), *ctl]).start()
        acting = diagnostics(probe, 'vla_control: vla_controller',
                             lambda v: v['state'] == 'active' and int(v['actions']) > 30, 120)
        assert acting is not None, '\n'.join(p.output() for p in group.processes)
        assert acting['action_space'] == 'ee_delta'
        assert int(acting['faults']) == 0 and int(acting['ik_failures']) == 0, acting
        gate = diagnostics(probe, 'vla_safety: command_gate', lambda v: 'refused' in v, 10)
        assert gate is not None and int(gate['refused']) == 0 and gate['latched'] == 'none', gate
        requests = probe.messages(REQUEST_TOPIC)
        assert requests and all(list(m.joint_names) == JOINTS for m in requests)
        points = max(len(m.points) for m in requests)
        assert points == 1 + execution.get('plan_points', 0), points
        assert len(probe.messages(ROBOT_COMMAND_TOPIC)) > 10, 'the gate forwarded the commands'
        states = probe.messages('/joint_states')
        first, last = (np.array(states[i].position) for i in (0, -1))
        assert np.abs(last - first).max() > 1e-3, 'the arm did not move'
        # and the tool moved as the deltas say: along +x and +z, hardly along y
        kinematics = ArmKinematics()
        moved = kinematics.fk(last[:6])[0] - kinematics.fk(first[:6])[0]
        assert moved[0] > 0.005 and moved[2] > 0.005 and abs(moved[1]) < moved[0], moved
        assert not group.dead()
    finally:
        probe.close()
        if group is not None:
            group.stop()


def test_a_kinematics_model_that_does_not_fit_the_robot_is_an_error_state_saying_why(tmp_path):
    """An end-effector checkpoint with kinematics_model naming another arm: configure refuses it
    (the node stays up, holding, in the error state) and /diagnostics says what was expected."""
    from vla_policy.testing import make_tiny_checkpoint
    from vla_sim import EE_ACTION_NAMES
    ckpt = make_tiny_checkpoint(tmp_path / 'ee', joint_names=JOINTS, action_names=EE_ACTION_NAMES,
                                image_size=SIZE)
    other = tmp_path / 'two_joint_arm.xml'
    other.write_text("""<mujoco><worldbody><body name="l1"><joint name="shoulder" type="hinge"/>
      <geom size="0.05"/><body name="l2" pos="0 0 0.3"><joint name="elbow" type="hinge"/>
      <geom size="0.05"/><site name="tcp" pos="0 0 0.3"/></body></body></worldbody></mujoco>""")
    (spec,) = controller_nodes({'checkpoint': str(ckpt), 'command': 'reach'})
    spec = dataclasses.replace(spec, parameters={**spec.parameters, 'kinematics_model': str(other)})
    probe = GraphProbe('ee_controller_refusal_probe')
    group = None
    try:
        probe.subscribe(DiagnosticArray, '/diagnostics', 50)
        probe.subscribe(JointTrajectory, REQUEST_TOPIC)
        group = NodeGroup([spec]).start()
        error = diagnostics(probe, 'vla_control: vla_controller', lambda v: v['state'] == 'error', 90)
        assert error is not None, '\n'.join(p.output() for p in group.processes)
        assert 'does not fit the robot' in error['message'], error['message']
        assert "['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6']" in error['message']
        assert not group.dead() and probe.messages(REQUEST_TOPIC) == []
    finally:
        probe.close()
        if group is not None:
            group.stop()
