"""ScriptedExpert: solves every task, respects the speed limit, needs only the documented state."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from vla_sim import TASKS, ScriptedExpert, SimEnv
from vla_sim.testing import StateProxy, run_episode


@pytest.fixture(scope="module")
def env():
    return SimEnv(render_images=False)


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("seed", [0, 1])
def test_expert_solves_task(env, task, seed):
    expert = ScriptedExpert(StateProxy(env), max_joint_speed=1.5)
    info, actions = run_episode(env, expert, task, seed)
    assert info["success"], f"{task} seed {seed}: expert failed in phase {expert.phase!r}"
    assert info["elapsed_steps"] < 0.75 * TASKS[task].max_steps
    assert actions.dtype == np.float32 and actions.shape[1] == 7
    joint_speed = np.abs(np.diff(actions[:, :6], axis=0)) / env.dt
    assert joint_speed.max() <= 1.5 + 1e-3  # below the safety layer's 2.0 rad/s
    assert np.all(actions[:, 6] >= 0.0) and np.all(actions[:, 6] <= 0.08)


def test_expert_with_noise_is_seeded_and_still_succeeds(env):
    runs = []
    for _ in range(2):
        expert = ScriptedExpert(env, noise=0.01, seed=7)
        runs.append(run_episode(env, expert, "pick_blue", 3))
    (info_a, actions_a), (info_b, actions_b) = runs
    assert info_a["success"] and np.array_equal(actions_a, actions_b)
    quiet = run_episode(env, ScriptedExpert(env), "pick_blue", 3)[1]
    assert not np.array_equal(quiet[:20], actions_a[:20])


def test_expert_rejects_bad_settings(env):
    with pytest.raises(ValueError, match="max_joint_speed"):
        ScriptedExpert(env, max_joint_speed=2.5)
    with pytest.raises(ValueError, match="noise"):
        ScriptedExpert(env, noise=-0.1)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_expert_success_rate_over_50_seeds(env, task):
    expert = ScriptedExpert(env)
    successes = sum(run_episode(env, expert, task, seed)[0]["success"] for seed in range(50))
    assert successes >= 48, f"{task}: {successes}/50"
