"""ArmKinematics: FK agrees with the simulator, IK round trips, limits hold."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from vla_sim import ArmKinematics, SimEnv
from vla_sim.env import HOME_QPOS, SPAWN_X, SPAWN_Y
from vla_sim.kinematics import rot_z, tool_down_rotation, tool_yaw


@pytest.fixture(scope="module")
def kin():
    return ArmKinematics()


def test_fk_matches_simulator(kin):
    env = SimEnv(render_images=False)
    env.reset(task="pick_red", seed=4)
    q = env.joint_positions()
    pos, rot = kin.fk(q)  # (7,) is accepted, the gripper is ignored
    assert np.allclose(pos, env.privileged_state()["ee_pos"], atol=1e-9)
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-9)


def test_home_pose_points_down(kin):
    pos, rot = kin.fk(HOME_QPOS)
    assert np.allclose(pos, (0.35, 0.0, 0.25), atol=2e-3)
    assert np.allclose(rot[:, 2], (0, 0, -1), atol=1e-3)
    assert tool_yaw(rot) == pytest.approx(0.0, abs=1e-3)


def test_joint_ranges_within_safety_limit(kin):
    assert np.all(kin.lower >= -3.14) and np.all(kin.upper <= 3.14) and np.all(kin.lower < kin.upper)


def test_fk_ik_round_trip(kin):
    rng = np.random.default_rng(0)
    for _ in range(20):
        q_true = HOME_QPOS + rng.uniform(-0.5, 0.5, size=6)
        pos, rot = kin.fk(q_true)
        result = kin.ik_pose(pos, rot, HOME_QPOS, max_iters=100)
        assert result.converged, result
        pos2, rot2 = kin.fk(result.q)
        assert np.linalg.norm(pos2 - pos) < 1e-3 and np.allclose(rot2, rot, atol=1e-2)


@pytest.mark.parametrize("x", SPAWN_X)
@pytest.mark.parametrize("y", SPAWN_Y)
@pytest.mark.parametrize("z", [0.025, 0.25])
def test_downward_ik_covers_workspace(kin, x, y, z):
    for yaw in (np.arctan2(y, x) - np.pi / 4, np.arctan2(y, x) + np.pi / 4):
        result = kin.ik((x, y, z), yaw, HOME_QPOS, max_iters=100)
        assert result.converged and result.pos_error < 1e-3 and result.rot_error < 1e-2
        assert np.all(result.q >= kin.lower) and np.all(result.q <= kin.upper)
        _, rot = kin.fk(result.q)
        assert np.allclose(rot, tool_down_rotation(yaw), atol=1e-2)
        assert tool_yaw(rot) == pytest.approx(yaw, abs=1e-2)


def test_unreachable_target_returns_best_effort(kin):
    result = kin.ik((2.0, 0.0, 0.2), 0.0, HOME_QPOS, max_iters=30)
    assert not result.converged and result.pos_error > 0.5
    assert np.all(result.q >= kin.lower) and np.all(result.q <= kin.upper)


def test_jacobian_matches_finite_differences(kin):
    q = HOME_QPOS + 0.1
    jac = kin.jacobian(q)
    pos0, rot0 = kin.fk(q)
    eps = 1e-6
    for i in range(6):
        dq = np.zeros(6)
        dq[i] = eps
        pos1, _ = kin.fk(q + dq)
        assert np.allclose((pos1 - pos0) / eps, jac[:3, i], atol=1e-4)


def test_bad_input(kin):
    with pytest.raises(ValueError, match="6 arm joint"):
        kin.fk(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        kin.ik((np.nan, 0, 0), 0.0, HOME_QPOS)
    assert np.allclose(rot_z(np.pi / 2) @ (1, 0, 0), (0, 1, 0))
