"""End-effector actions turned into joint targets (vla_control.ee_actions), without ROS: the same
targets as SimEnv(action_mode="ee_delta") from the same start, anchored at the measured joints
whenever the controller starts acting, IK failures held, plans integrated on a copy."""
import os
import subprocess
import sys

os.environ.setdefault('MUJOCO_GL', 'egl')

import numpy as np
import pytest

from vla_control.ee_actions import EE_ACTION_NAMES, EEActionConverter, is_ee_checkpoint, load_kinematics
from vla_control.runtime import ControlLoop, Inputs
from vla_safety.rules import SafetyLimits

JOINTS = ['joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper']
LIMITS = SafetyLimits.from_values(JOINTS, [-2.9, -1.9, -2.8, -2.9, -2.5, -3.1, 0.0],
                                  [2.9, 1.9, 2.8, 2.9, 2.5, 3.1, 0.08], [2.0] * 6 + [0.5])
PERIOD = 1 / 30


@pytest.fixture(scope='module')
def env():
    from vla_sim import SimEnv
    return SimEnv(render_images=False, action_mode='ee_delta')


def expert_actions(env, task: str, seed: int, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(start joints, the expert's EE actions of ``steps`` ticks) on ``env``, and the joint
    targets SimEnv gave the actuators for each (``data.ctrl``)."""
    from vla_sim import ScriptedExpert
    expert = ScriptedExpert(env)
    obs = env.reset(task=task, seed=seed)
    start = env.joint_positions()  # float64, as /joint_states carries it
    actions, targets = [], []
    for _ in range(steps):
        action = env.ee_delta_for(expert.act(obs))  # float32, as a policy outputs it
        obs, _r, done, _info = env.step(action)
        actions.append(action)
        targets.append(env.data.ctrl.copy())
        if done:
            break
    return start, actions, targets


def test_the_names_are_vla_sims_and_recognise_a_checkpoint():
    import vla_sim
    assert EE_ACTION_NAMES == vla_sim.EE_ACTION_NAMES
    assert is_ee_checkpoint(list(EE_ACTION_NAMES)) and not is_ee_checkpoint(JOINTS)


@pytest.mark.parametrize('task', ['reach_marker', 'push_to_goal'])
def test_a_sequence_of_deltas_gives_simenvs_joint_targets(env, task):
    start, actions, targets = expert_actions(env, task, seed=2, steps=120)
    converter = EEActionConverter.for_robot(JOINTS)
    converter.anchor(start)
    low, high = env.joint_action_low, env.joint_action_high
    for k, (action, want) in enumerate(zip(actions, targets)):
        got, problem = converter.step(action)
        assert problem == '', f'tick {k}: {problem}'
        np.testing.assert_allclose(np.clip(got, low, high), want, rtol=0, atol=1e-12,
                                   err_msg=f'tick {k}')
    # random deltas (clipped per tick as SimEnv clips them) from the same start
    env.reset(task=task, seed=3)
    converter.anchor(env.joint_positions())
    rng = np.random.default_rng(0)
    for k in range(40):
        action = rng.uniform(env.action_low * 1.5, env.action_high * 1.5).astype(np.float32)
        env.step(action)
        got, problem = converter.step(action)
        assert problem == '', f'tick {k}: {problem}'
        np.testing.assert_allclose(np.clip(got, low, high), env.data.ctrl, rtol=0, atol=1e-12)


def ee_inputs(now: float) -> Inputs:
    return Inputs(now, 'reach the marker', 0.0, now, now, '')


class Replay:
    """A stand-in policy replaying EE actions, one per tick (and the next ones as its plan)."""

    predicted_chunk = True

    def __init__(self, actions) -> None:
        self.actions, self.i, self.resets = list(actions), 0, 0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs):
        self.i += 1
        return self.actions[self.i - 1]

    def upcoming(self, n):
        return np.asarray(self.actions[self.i:self.i + n])


def test_the_control_loop_commands_simenvs_targets_and_reanchors_after_a_hold(env):
    start, actions, targets = expert_actions(env, 'reach_marker', seed=1, steps=30)
    policy = Replay(actions)
    loop = ControlLoop(policy, LIMITS, PERIOD, max_age=0.25, settle_time=0.0,
                       ee=EEActionConverter.for_robot(JOINTS))
    low, high = env.joint_action_low, env.joint_action_high
    for k in range(20):  # the measured joints stay at the start: only the first tick reads them
        result = loop.decide(ee_inputs(k * PERIOD), None, {}, start)
        assert result.hold == '' and result.fault is None
        np.testing.assert_allclose(np.clip(result.command, low, high), targets[k], atol=1e-9)
        np.testing.assert_allclose(result.action_ee, actions[k])
    # a stale joint state holds; acting again starts from the measured pose, not the old one
    held = loop.decide(ee_inputs(1.0), 'joint state is stale (0.50 s old, limit 0.25 s)', None, None)
    assert held.hold and not loop.ee.anchored
    moved = start + np.array([0.1, -0.05, 0.05, 0.0, 0.05, 0.0, 0.0])
    zero = np.array([0, 0, 0, 0, 0, 0, 0.04], dtype=np.float32)
    policy.actions[policy.i] = zero
    result = loop.decide(ee_inputs(2.0), None, {}, moved)
    np.testing.assert_allclose(result.command[:6], moved[:6], atol=2e-3)  # IK of FK(moved)
    assert 0.04 <= result.command[6] < moved[6]  # the gripper towards 0.04 (the guard's rate)
    # a new command re-anchors too
    loop.new_episode()
    assert not loop.ee.anchored


def test_ik_that_does_not_converge_holds_with_the_reason_and_commands_nothing_wrong():
    converter = EEActionConverter.for_robot(JOINTS)
    q = np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0, 0.04])
    far = np.array([0.01, 0.0, 0.0, 0, 0, 0, 0.04], dtype=np.float32)  # 1 cm a tick along x
    loop = ControlLoop(Replay([far] * 200), LIMITS, PERIOD, max_age=0.25, settle_time=0.0,
                       ee=converter)
    result, k = None, 0
    for k in range(200):  # the arm is driven out of reach; the measured joints follow the target
        result = loop.decide(ee_inputs(k * PERIOD), None, {}, q)
        if result.hold:
            break
        q = result.command
    assert result.hold.startswith('IK did not converge'), result.hold
    assert result.fault[0] == 'ik not converged' and converter.ik_failures == 1
    np.testing.assert_allclose(result.command, q)  # held at the measured position
    assert loop.last_target is not None and np.allclose(loop.last_target, q)


def test_a_non_finite_or_short_action_is_refused():
    converter = EEActionConverter.for_robot(JOINTS)
    with pytest.raises(RuntimeError, match='anchor'):
        converter.step(np.zeros(7))
    converter.anchor(np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0, 0.04]))
    targets, problem = converter.step(np.array([np.nan, 0, 0, 0, 0, 0, 0.04]))
    assert targets is None and "not finite for ['ee_dx']" in problem
    targets, problem = converter.step(np.zeros(3))
    assert targets is None and '3 values' in problem
    assert converter.ik_failures == 0  # refused inputs are not IK failures


def test_plan_points_integrate_the_deltas_on_a_copy(env):
    start, actions, _targets = expert_actions(env, 'push_to_goal', seed=0, steps=12)
    policy = Replay(actions)
    loop = ControlLoop(policy, LIMITS, PERIOD, max_age=0.25, settle_time=0.0, plan_points=3,
                       ee=EEActionConverter.for_robot(JOINTS))
    first = loop.decide(ee_inputs(0.0), None, {}, start)
    assert first.plan is not None and first.plan.shape == (3, 7)
    pose = loop.ee.controller.pos.copy()
    for k in range(3):  # the plan's points are what the next ticks command
        result = loop.decide(ee_inputs((k + 1) * PERIOD), None, {}, start)
        np.testing.assert_allclose(result.command, first.plan[k], atol=1e-12)
        if k == 0:
            assert not np.allclose(loop.ee.controller.pos, pose) or np.allclose(actions[1][:3], 0)
    converter = EEActionConverter.for_robot(JOINTS)
    converter.anchor(start)
    before = converter.controller.pos.copy(), converter.controller.q.copy()
    points = converter.preview(np.asarray(actions[:4]))
    assert points.shape == (4, 7)
    np.testing.assert_array_equal(converter.controller.pos, before[0])
    np.testing.assert_array_equal(converter.controller.q, before[1])
    bad = np.asarray(actions[:4]).copy()
    bad[2, 0] = np.nan
    assert converter.preview(bad).shape == (2, 7)  # up to the first bad action


def test_a_kinematics_model_that_does_not_fit_the_robot_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"6 arm joints then the gripper.*\['a', 'b'\]"):
        load_kinematics(['a', 'b'])
    with pytest.raises(ValueError, match='6 arm joints then the gripper'):
        load_kinematics(JOINTS[:6])
    with pytest.raises(ValueError, match='is not a file'):
        load_kinematics(JOINTS, str(tmp_path / 'missing.xml'))
    with pytest.raises(ValueError, match="site 'flange' not found.*kinematics_site"):
        load_kinematics(JOINTS, site='flange')
    other = tmp_path / 'other_arm.xml'  # a two-joint arm: not the robot's six
    other.write_text("""<mujoco><worldbody><body name="l1"><joint name="shoulder" type="hinge"/>
      <geom size="0.05"/><body name="l2" pos="0 0 0.3"><joint name="elbow" type="hinge"/>
      <geom size="0.05"/><site name="tcp" pos="0 0 0.3"/></body></body></worldbody></mujoco>""")
    with pytest.raises(ValueError, match=r"joint\(s\) \['joint1', .*not found.*expected its arm joints"):
        load_kinematics(JOINTS, str(other))


def test_a_labs_arm_with_its_own_joint_names_and_mjcf(tmp_path):
    """The simulated arm's MJCF with the joints renamed, as a lab's robot description: the same
    targets under the lab's names, and the simulated arm's model refuses those names."""
    from vla_sim.kinematics import SCENE_XML
    renamed = ['shoulder_pan', 'shoulder_lift', 'elbow', 'wrist_1', 'wrist_2', 'wrist_3', 'gripper']
    text = SCENE_XML.read_text()
    for old, new in zip(JOINTS[:6], renamed):
        text = text.replace(f'"{old}"', f'"{new}"')
    lab = tmp_path / 'lab_arm.xml'  # the scene references no mesh or texture file
    lab.write_text(text)
    ours, theirs = EEActionConverter.for_robot(JOINTS), EEActionConverter.for_robot(renamed, str(lab))
    q = np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0, 0.04])
    ours.anchor(q)
    theirs.anchor(q)
    action = np.array([0.005, -0.003, 0.002, 0.0, 0.02, 0.0, 0.03])
    np.testing.assert_allclose(theirs.step(action)[0], ours.step(action)[0], atol=1e-12)
    with pytest.raises(ValueError, match=r"\['shoulder_pan'.*not found"):
        load_kinematics(renamed)


@pytest.mark.slow  # a fresh interpreter importing torch and rclpy: 35-45 s on 2 busy cores
def test_a_joint_space_controller_never_imports_vla_sim_or_mujoco(tmp_path):
    from vla_policy.testing import make_tiny_checkpoint
    ckpt = make_tiny_checkpoint(tmp_path / 'joint', joint_names=JOINTS, image_size=32)
    code = f"""
import sys
from vla_control.loading import PolicySettings, load_policy
import vla_control.controller_node
policy, ee = load_policy(PolicySettings({str(ckpt)!r}, traced=False), {JOINTS!r}, 1 / 30, lambda: 0.0,
                         lambda level, line: None)
assert ee is None
print(sorted(m for m in ('vla_sim', 'mujoco') if m in sys.modules))
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == '[]'


def test_an_ee_checkpoint_loads_with_its_converter_and_a_misfit_is_refused(tmp_path):
    from vla_control.loading import PolicySettings, load_policy
    from vla_policy.testing import make_tiny_checkpoint
    ckpt = make_tiny_checkpoint(tmp_path / 'ee', joint_names=JOINTS, action_names=EE_ACTION_NAMES,
                                image_size=32, chunk_size=8, n_action_steps=4)
    lines = []
    for inference in ('sync', 'async'):
        policy, ee = load_policy(PolicySettings(str(ckpt), inference=inference, plan_points=2),
                                 JOINTS, PERIOD, lambda: 0.0, lambda level, line: lines.append(line))
        assert isinstance(ee, EEActionConverter)
        if hasattr(policy, 'close'):
            policy.close()
    assert any('end-effector actions' in line for line in lines)
    with pytest.raises(ValueError, match='not a file'):
        load_policy(PolicySettings(str(ckpt), kinematics_model=str(tmp_path / 'nope.xml')),
                    JOINTS, PERIOD, lambda: 0.0, lambda level, line: None)
    renamed = ['j1', 'j2', 'j3', 'j4', 'j5', 'j6', 'gripper']
    other = make_tiny_checkpoint(tmp_path / 'ee_renamed', joint_names=renamed,
                                 action_names=EE_ACTION_NAMES, image_size=32)
    with pytest.raises(ValueError, match=r"joint\(s\) \['j1'.*not found.*expected its arm joints"):
        load_policy(PolicySettings(str(other)), renamed, PERIOD, lambda: 0.0,
                    lambda level, line: None)


class DeltaChunks:
    """A stand-in policy predicting chunks of 8 end-effector actions: 2 mm a tick along +x."""

    class config:  # noqa: N801 - the attributes AsyncPolicy and the stitcher read
        chunk_size, n_action_steps, ensemble_decay = 8, 4, 0.01

    def reset(self) -> None:
        pass

    def predict_chunk(self, obs):
        return np.tile(np.array([0.002, 0, 0, 0, 0, 0, 0.04], np.float32), (8, 1))


@pytest.mark.parametrize('stitching', ['queue', 'latency', 'crossfade', 'ensemble'])
def test_asynchronous_inference_stitches_deltas_and_the_loop_converts_them(stitching):
    """Every stitching policy joins chunks of deltas (a crossfade or an ensemble of deltas is a
    blend of deltas); the loop turns the stitched action into joint targets."""
    import time

    from vla_control.async_policy import AsyncPolicy
    from vla_control.chunking import ChunkStitcher
    now = [0.0]
    policy = AsyncPolicy(DeltaChunks(), ChunkStitcher(stitching, PERIOD, 7, n_action_steps=4),
                         lambda: now[0])
    converter = EEActionConverter.for_robot(JOINTS)
    loop = ControlLoop(policy, LIMITS, PERIOD, max_age=0.25, settle_time=0.0, ee=converter)
    q = np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0, 0.04])
    start = converter.controller.kin.fk(q[:6])[0]
    try:
        acted = []
        for k in range(40):
            now[0] = k * PERIOD
            result = loop.decide(ee_inputs(now[0]), None, {'joint_positions': q}, q)
            assert result.fault is None, result.fault
            if result.command is not None and not result.hold:
                acted.append(result.command)
                q = result.command  # the arm follows
            deadline = time.monotonic() + 5.0  # let the worker land its chunk before the next tick
            while policy.stitcher.remaining(now[0] + PERIOD) == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
        assert len(acted) > 30, stitching
        moved = converter.controller.kin.fk(q[:6])[0] - start
        assert moved[0] == pytest.approx(0.002 * len(acted), abs=3e-3) and abs(moved[1]) < 1e-3
    finally:
        policy.close()
