"""SimEnv: observations, determinism, bad input, clipping, scene layout."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from vla_sim import JOINT_NAMES, TASKS, SimEnv
from vla_sim.env import OBJECT_NAMES, SPAWN_MIN_DIST, SPAWN_X, SPAWN_Y


@pytest.fixture(scope="module")
def env():
    env = SimEnv(image_size=224, cameras=("front", "wrist"))
    yield env
    env.close()


@pytest.fixture(scope="module")
def fast_env():
    return SimEnv(render_images=False)


def test_observation_shapes_and_types(env):
    obs = env.reset(task="pick_red", seed=3)
    assert obs["image"].shape == (224, 224, 3) and obs["image"].dtype == np.uint8
    assert obs["image_wrist"].shape == (224, 224, 3) and obs["image_wrist"].dtype == np.uint8
    assert obs["joint_positions"].shape == (7,) and obs["joint_positions"].dtype == np.float32
    assert obs["joint_velocities"].shape == (7,) and obs["joint_velocities"].dtype == np.float32
    assert obs["instruction"] == "pick up the red cube"
    assert obs["joint_positions"][6] == pytest.approx(0.08)
    assert obs["image"].std() > 10  # not a blank frame
    assert env.render("front", size=96).shape == (96, 96, 3)
    assert env.render("front", size=640).shape == (640, 640, 3)


def test_attributes(env):
    env.reset(task="stack_green_on_red", seed=0)
    assert env.joint_names == JOINT_NAMES == ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper")
    assert env.object_names == ("red_cube", "green_cube", "blue_cube")
    assert env.dt == pytest.approx(1 / 30) and env.n_substeps == 20
    assert env.task is TASKS["stack_green_on_red"] and env.seed == 0
    assert np.all(env.action_low[:6] >= -3.14) and np.all(env.action_high[:6] <= 3.14)
    assert (env.action_low[6], env.action_high[6]) == pytest.approx((0.0, 0.08))
    obs, reward, done, info = env.step(env.joint_positions())
    assert env.elapsed_steps == 1 and env.sim_time == pytest.approx(env.dt)
    assert set(info) == {"success", "elapsed_steps", "time_limit_reached", "task", "seed", "clipped"}
    assert 0.0 <= reward <= 1.0 and not done and not info["clipped"]


def test_privileged_state_layout(fast_env):
    fast_env.reset(task="pick_blue", seed=1)
    state = fast_env.privileged_state()
    assert state["task"] == "pick_blue" and state["dt"] == pytest.approx(1 / 30)
    assert state["joint_positions"].shape == (7,) and state["joint_velocities"].shape == (7,)
    assert state["ee_pos"].shape == (3,)
    assert set(state["objects"]) == set(OBJECT_NAMES)
    for obj in state["objects"].values():
        assert obj["pos"].shape == (3,) and obj["quat"].shape == (4,)
        assert np.linalg.norm(obj["quat"]) == pytest.approx(1.0)
    assert state["contacts"]["red_cube"] == ("table",)


def test_same_seed_is_bitwise_identical_and_seeds_differ(env):
    other = SimEnv(image_size=224, cameras=("front", "wrist"))
    rng = np.random.default_rng(0)
    actions = [env.action_low + (env.action_high - env.action_low) * rng.uniform(0.4, 0.6, size=7) for _ in range(15)]
    runs = []
    for e in (env, other):
        obs = e.reset(task="pick_green", seed=11)
        frames = [obs]
        for a in actions:
            frames.append(e.step(a)[0])
        runs.append((frames, e.privileged_state()))
    (frames_a, state_a), (frames_b, state_b) = runs
    for fa, fb in zip(frames_a, frames_b):
        assert np.array_equal(fa["image"], fb["image"]) and np.array_equal(fa["image_wrist"], fb["image_wrist"])
        assert np.array_equal(fa["joint_positions"], fb["joint_positions"])
        assert np.array_equal(fa["joint_velocities"], fb["joint_velocities"])
    for name in OBJECT_NAMES:
        assert np.array_equal(state_a["objects"][name]["pos"], state_b["objects"][name]["pos"])
    other.close()

    start = env.reset(task="pick_green", seed=12)
    assert not np.array_equal(start["image"], frames_a[0]["image"])
    assert not np.array_equal(start["joint_positions"], frames_a[0]["joint_positions"])


def test_reset_restores_everything(fast_env):
    fast_env.reset(task="pick_red", seed=5)
    first = fast_env.privileged_state()
    for _ in range(10):
        fast_env.step(fast_env.action_high)
    fast_env.reset(task="pick_red", seed=5)
    again = fast_env.privileged_state()
    assert fast_env.elapsed_steps == 0 and fast_env.sim_time == 0.0
    assert np.array_equal(first["joint_positions"], again["joint_positions"])
    assert np.array_equal(first["joint_velocities"], again["joint_velocities"])


def test_unknown_task_lists_valid_names(fast_env):
    with pytest.raises(ValueError) as err:
        fast_env.reset(task="pick_purple", seed=0)
    assert "pick_purple" in str(err.value)
    for name in TASKS:
        assert name in str(err.value)


def test_bad_seed(fast_env):
    with pytest.raises(ValueError, match="seed"):
        fast_env.reset(task="pick_red", seed=-1)


def test_step_before_reset():
    env = SimEnv(render_images=False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))


def test_bad_actions(fast_env):
    obs = fast_env.reset(task="pick_red", seed=0)
    with pytest.raises(ValueError, match=r"\(7,\).*\(6,\)"):
        fast_env.step(np.zeros(6))
    bad = obs["joint_positions"].astype(np.float64)
    bad[2] = np.nan
    bad[6] = np.inf
    with pytest.raises(ValueError, match="joint3.*gripper"):
        fast_env.step(bad)
    assert fast_env.elapsed_steps == 0  # rejected actions do not advance time


def test_out_of_range_targets_are_clipped(fast_env):
    obs = fast_env.reset(task="pick_red", seed=0)
    action = obs["joint_positions"].astype(np.float64)
    _, _, _, info = fast_env.step(action)
    assert not info["clipped"]
    action[0] = 10.0
    action[6] = 0.5
    _, _, _, info = fast_env.step(action)
    assert info["clipped"]
    assert fast_env.data.ctrl[0] == pytest.approx(fast_env.action_high[0])
    assert fast_env.data.ctrl[6] == pytest.approx(0.08)


def test_extreme_actions_stay_stable(fast_env):
    """Bang-bang targets at the joint limits: the arm hits the table, physics stays finite."""
    fast_env.reset(task="stack_green_on_red", seed=2)
    rng = np.random.default_rng(1)
    for i in range(90):
        pick = rng.integers(0, 2, size=7).astype(bool)
        action = np.where(pick, fast_env.action_high, fast_env.action_low)
        _, reward, _, _ = fast_env.step(action)
        assert 0.0 <= reward <= 1.0
    state = fast_env.privileged_state()
    assert np.all(np.isfinite(fast_env.data.qpos)) and np.all(np.abs(state["joint_positions"][:6]) < 3.2)


def test_time_limit_ends_episode(fast_env):
    obs = fast_env.reset(task="pick_red", seed=0)
    hold = obs["joint_positions"]
    for _ in range(TASKS["pick_red"].max_steps - 1):
        _, _, done, info = fast_env.step(hold)
        assert not done
    _, _, done, info = fast_env.step(hold)
    assert done and info["time_limit_reached"] and not info["success"]
    assert info["elapsed_steps"] == 240


def test_control_rate_must_divide_physics_step():
    assert SimEnv(control_hz=60, render_images=False).n_substeps == 10
    with pytest.raises(ValueError, match="control_hz"):
        SimEnv(control_hz=7, render_images=False)
    with pytest.raises(ValueError, match="camera"):
        SimEnv(cameras=("top",))


def test_cube_spawn_is_random_separate_and_in_region(fast_env):
    layouts = []
    for seed in range(40):
        fast_env.reset(task="pick_red", seed=seed)
        pos = np.array([fast_env.privileged_state()["objects"][o]["pos"] for o in OBJECT_NAMES])
        assert np.all((pos[:, 0] >= SPAWN_X[0]) & (pos[:, 0] <= SPAWN_X[1]))
        assert np.all((pos[:, 1] >= SPAWN_Y[0]) & (pos[:, 1] <= SPAWN_Y[1]))
        assert np.allclose(pos[:, 2], 0.02)
        for i in range(3):
            for j in range(i + 1, 3):
                assert np.linalg.norm(pos[i, :2] - pos[j, :2]) >= SPAWN_MIN_DIST
        layouts.append(pos)
    assert len({p.round(4).tobytes() for p in layouts}) == 40


def test_cubes_are_visible_in_front_camera(env):
    """Segmentation render: every cube covers some pixels of the front image at the start."""
    renderer = mujoco.Renderer(env.model, 224, 224)
    renderer.enable_segmentation_rendering()
    cube_geoms = {o: mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, o) for o in OBJECT_NAMES}
    try:
        for seed in range(12):
            env.reset(task="pick_red", seed=seed)
            renderer.update_scene(env.data, camera="front")
            seg = renderer.render()[..., 0]
            for name, gid in cube_geoms.items():
                assert np.count_nonzero(seg == gid) >= 25, f"{name} hidden in seed {seed}"
    finally:
        renderer.close()
