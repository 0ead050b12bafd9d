"""SimEnv(action_mode="ee_delta"): end-effector delta actions turned into joint targets by IK."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from vla_sim import ScriptedExpert, SimEnv
from vla_sim.ee_control import MAX_ROTATION, MAX_TRANSLATION, EEDeltaController, rotvec_to_matrix


@pytest.fixture(scope="module")
def ee_env():
    return SimEnv(render_images=False, action_mode="ee_delta")


def test_bad_mode_and_bounds(ee_env):
    with pytest.raises(ValueError, match="action_mode"):
        SimEnv(render_images=False, action_mode="torque")
    assert np.allclose(ee_env.action_high[:6], [MAX_TRANSLATION] * 3 + [MAX_ROTATION] * 3)
    assert ee_env.action_high[6] == 0.08 and ee_env.action_low[6] == 0.0
    assert np.array_equal(SimEnv(render_images=False).action_low, ee_env.joint_action_low)
    with pytest.raises(RuntimeError, match="ee_delta"):
        SimEnv(render_images=False).ee_delta_for(np.zeros(7))


def test_zero_action_holds_and_deltas_move_the_tool(ee_env):
    ee_env.reset(task="pick_red", seed=0)
    start = ee_env.privileged_state()["ee_pos"].copy()
    hold = np.array([0, 0, 0, 0, 0, 0, 0.08])
    for _ in range(20):
        ee_env.step(hold)
    assert np.linalg.norm(ee_env.privileged_state()["ee_pos"] - start) < 0.003
    move = np.array([0.005, -0.005, 0.0, 0, 0, 0, 0.08])  # 5 mm per tick in x and -y
    for _ in range(10):
        info = ee_env.step(move)[3]
        assert not info["clipped"]
    for _ in range(15):
        ee_env.step(hold)
    assert np.allclose(ee_env.privileged_state()["ee_pos"] - start, [0.05, -0.05, 0.0], atol=0.004)
    info = ee_env.step(np.array([0.05, 0, 0, 0, 0, 0, 0.08]))[3]  # 5 cm in one tick: clipped to 1 cm
    assert info["clipped"]


def test_same_actions_same_targets(ee_env):
    actions = np.random.default_rng(0).uniform(ee_env.action_low, ee_env.action_high, size=(30, 7))
    runs = []
    for _ in range(2):
        ee_env.reset(task="reach_marker", seed=4)
        runs.append([ee_env.step(a)[0]["joint_positions"] for a in actions])
    assert np.array_equal(np.array(runs[0]), np.array(runs[1]))


def test_delta_for_inverts_step():
    ctrl = EEDeltaController()
    q0 = np.array([0.0, 0.174, 1.666, 1.301, 0.0, 0.0])
    ctrl.reset(q0)
    q1 = q0 + np.array([0.02, -0.01, 0.015, 0.0, 0.01, 0.03])
    delta = ctrl.delta_for(np.append(q1, 0.04))
    targets, clipped = ctrl.step(delta)
    pos, rot = ctrl.kin.fk(targets[:6])
    want_pos, want_rot = ctrl.kin.fk(q1)
    assert not clipped and targets[6] == 0.04
    assert np.linalg.norm(pos - want_pos) < 1e-3 and np.allclose(rot, want_rot, atol=1e-2)
    assert np.allclose(rotvec_to_matrix(np.array([0.0, 0.0, np.pi / 2])) @ [1, 0, 0], [0, 1, 0], atol=1e-9)


@pytest.mark.parametrize("task", ["reach_marker", "push_to_goal", "pick_red"])
def test_expert_drives_an_ee_env(ee_env, task):
    expert = ScriptedExpert(ee_env)
    obs = ee_env.reset(task=task, seed=1)
    done = False
    while not done:
        obs, reward, done, info = ee_env.step(ee_env.ee_delta_for(expert.act(obs)))
    assert info["success"], f"{task}: expert failed in phase {expert.phase!r}"
