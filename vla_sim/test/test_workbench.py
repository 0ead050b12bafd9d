"""The workbench scene: registry, seeded layouts, scene switching, success checks, scripted expert."""

import dataclasses
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest

from vla_sim import ALL_TASKS, SUITES, TASKS, WORKBENCH_TASKS, ScriptedExpert, SimEnv
from vla_sim import workbench as wb
from vla_sim.testing import StateProxy, run_episode

NAMES = ("reach_marker", "push_to_goal", "press_button", "open_drawer", "insert_peg")


@pytest.fixture(scope="module")
def env():
    env = SimEnv(image_size=64, cameras=("front", "wrist"))
    yield env
    env.close()


@pytest.fixture(scope="module")
def fast_env():
    return SimEnv(render_images=False)


def test_registry_keeps_the_cube_tasks_apart():
    assert set(WORKBENCH_TASKS) == set(NAMES)
    assert not set(NAMES) & set(TASKS)  # "all tasks" (TASKS) still means the four cube tasks
    assert list(TASKS) == ["pick_red", "pick_green", "pick_blue", "stack_green_on_red"]
    assert ALL_TASKS == {**TASKS, **WORKBENCH_TASKS}
    assert SUITES == {"tabletop": tuple(TASKS), "workbench": tuple(WORKBENCH_TASKS)}
    assert all(t.scene == "tabletop" for t in TASKS.values())
    assert all(t.scene == "workbench" for t in WORKBENCH_TASKS.values())
    assert {t.kind for t in WORKBENCH_TASKS.values()} == {"reach", "push", "press", "open", "insert"}
    with pytest.raises(ValueError, match="kind"):
        dataclasses.replace(TASKS["pick_red"], kind="push")
    with pytest.raises(ValueError, match="scene"):
        dataclasses.replace(TASKS["pick_red"], scene="kitchen")


@pytest.mark.parametrize("task", NAMES)
def test_reset_is_seeded(env, task):
    first = env.reset(task=task, seed=5)
    state = env.privileged_state()
    again = env.reset(task=task, seed=5)
    assert np.array_equal(first["image"], again["image"])
    assert np.array_equal(first["joint_positions"], again["joint_positions"])
    for name, obj in env.privileged_state()["objects"].items():
        assert np.array_equal(obj["pos"], state["objects"][name]["pos"])
    env.reset(task=task, seed=6)
    moved = env.privileged_state()["objects"]
    assert not np.array_equal(moved["marker"]["pos"], state["objects"]["marker"]["pos"])
    assert first["instruction"] == ALL_TASKS[task].instruction


def test_one_fixed_camera_and_scene_switching(env):
    obs = env.reset(task="press_button", seed=0)
    assert env.scene == "workbench" and env.cameras == ("front",) and env.camera_names == ("front",)
    assert "image_wrist" not in obs and obs["image"].shape == (64, 64, 3)
    assert env.object_names == wb.OBJECT_NAMES
    # Back on the cube table: the same observation as a fresh env gives, wrist camera included.
    cube = env.reset(task="pick_red", seed=3)
    fresh_env = SimEnv(image_size=64, cameras=("front", "wrist"))
    fresh = fresh_env.reset(task="pick_red", seed=3)
    assert env.scene == "tabletop" and env.cameras == ("front", "wrist")
    for key in ("image", "image_wrist", "joint_positions"):
        assert np.array_equal(cube[key], fresh[key])
    action = np.asarray(cube["joint_positions"], dtype=np.float64)
    for _ in range(3):
        a, b = env.step(action)[0], fresh_env.step(action)[0]
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["joint_positions"], b["joint_positions"])
    fresh_env.close()


def test_layouts_stay_in_their_regions(fast_env):
    markers = []
    for seed in range(40):
        fast_env.reset(task="push_to_goal", seed=seed)
        objects = fast_env.privileged_state()["objects"]
        marker, puck, goal, button = (objects[n]["pos"] for n in ("marker", "puck", "goal", "button"))
        markers.append(marker)
        assert wb.MARKER_Z[0] <= marker[2] <= wb.MARKER_Z[1]
        assert wb.PUCK_X[0] <= puck[0] <= wb.PUCK_X[1] and wb.PUCK_Y[0] <= puck[1] <= wb.PUCK_Y[1]
        assert wb.GOAL_X[0] <= goal[0] <= wb.GOAL_X[1] and wb.GOAL_Y[0] <= goal[1] <= wb.GOAL_Y[1]
        assert wb.PUSH_DIST[0] - 1e-9 <= np.linalg.norm(goal[:2] - puck[:2]) <= wb.PUSH_DIST[1] + 1e-9
        assert wb.BUTTON_Y[0] <= button[1] <= wb.BUTTON_Y[1]
        handle = objects["drawer"]["pos"]
        assert wb.CABINET_Y[0] <= handle[1] <= wb.CABINET_Y[1] and np.isclose(handle[2], wb.HANDLE_HEIGHT)
        assert objects["drawer"]["opening"][0] == 0.0
        peg, socket = objects["peg"]["pos"], objects["socket"]["pos"]
        assert wb.PEG_X[0] <= peg[0] <= wb.PEG_X[1] and wb.PEG_Y[0] <= peg[1] <= wb.PEG_Y[1]
        assert wb.SOCKET_X[0] <= socket[0] <= wb.SOCKET_X[1] and wb.SOCKET_Y[0] <= socket[1] <= wb.SOCKET_Y[1]
        assert np.isclose(button[2], wb.BUTTON_TOP, atol=1e-3)  # released at reset
        assert objects["button"]["depth"][0] < 1e-3
        assert not fast_env.task.success(fast_env.privileged_state())
    assert np.ptp(np.array(markers), axis=0).min() > 0.05  # randomised in x, y and z


def _state(ee=(0.4, 0.0, 0.2), marker=(0.4, 0.0, 0.1), puck=(0.4, -0.1, wb.PUCK_HALF_HEIGHT), goal=(0.5, -0.1, 0.0),
           puck_vel=(0.0, 0.0, 0.0), depth=0.0, opening=0.0, peg=(0.3, 0.3, wb.PEG_HALF_HEIGHT)):
    def obj(pos, vel=(0.0, 0.0, 0.0), **extra):
        return {"pos": np.array(pos, dtype=float), "quat": np.array([1.0, 0, 0, 0]), "linvel": np.array(vel), **extra}

    return {"ee_pos": np.array(ee), "objects": {
        "marker": obj(marker), "puck": obj(puck, puck_vel), "goal": obj(goal),
        "button": obj((0.4, 0.15, wb.BUTTON_TOP - depth), depth=np.array([depth])),
        "drawer": obj((0.53 - opening, 0.0, wb.HANDLE_HEIGHT), opening=np.array([opening])),
        "peg": obj(peg), "socket": obj((0.47, 0.3, 0.0))}}


def test_success_checks():
    reach, push, press, drawer, insert = (WORKBENCH_TASKS[n] for n in NAMES)
    assert reach.success(_state(ee=(0.4, 0.0, 0.105))) and reach.reward(_state(ee=(0.4, 0.0, 0.105))) == 1.0
    assert not reach.success(_state(ee=(0.4, 0.0, 0.112)))  # 1.2 cm off a 1 cm marker
    assert 0.0 < reach.reward(_state(ee=(0.4, 0.0, 0.112))) < 1.0
    assert push.success(_state(puck=(0.49, -0.1, wb.PUCK_HALF_HEIGHT)))
    assert not push.success(_state(puck=(0.475, -0.1, wb.PUCK_HALF_HEIGHT)))  # 2.5 cm off the goal centre
    assert not push.success(_state(puck=(0.5, -0.1, wb.PUCK_HALF_HEIGHT), puck_vel=(0.2, 0.0, 0.0)))  # sliding
    assert not push.success(_state(puck=(0.5, -0.1, 0.05)))  # lifted, not on the table
    far, near = push.reward(_state()), push.reward(_state(puck=(0.47, -0.1, wb.PUCK_HALF_HEIGHT)))
    assert 0.0 < far < near < 1.0
    assert press.success(_state(depth=0.009)) and not press.success(_state(depth=0.006))
    assert 0.0 < press.reward(_state(depth=0.004)) < 1.0
    assert drawer.success(_state(opening=0.065)) and not drawer.success(_state(opening=0.05))
    assert 0.0 < drawer.reward(_state(opening=0.0)) < drawer.reward(_state(opening=0.05)) < 1.0
    h = wb.PEG_HALF_HEIGHT
    assert insert.success(_state(peg=(0.472, 0.3, h)))  # standing on the hole's floor
    assert insert.success(_state(peg=(0.47, 0.3, h + 0.012)))  # 1.3 cm into the 2.5 cm deep hole
    assert not insert.success(_state(peg=(0.47, 0.3, h + 0.02)))  # only 5 mm in
    assert not insert.success(_state(peg=(0.48, 0.3, h)))  # beside the hole axis
    on_table, above = insert.reward(_state()), insert.reward(_state(peg=(0.47, 0.3, h + 0.03)))
    assert 0.0 < on_table < above < 1.0


def test_drawer_is_articulated(fast_env):
    """Pulled out in the physics, the drawer registers and stays open (no spring)."""
    fast_env.reset(task="open_drawer", seed=2)
    m, d = fast_env.model, fast_env.data
    adr = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "drawer")]
    before = fast_env.privileged_state()["objects"]["drawer"]["pos"]
    d.qpos[adr] = 0.07
    mujoco.mj_forward(m, d)
    state = fast_env.privileged_state()
    assert fast_env.task.success(state)
    assert np.allclose(state["objects"]["drawer"]["pos"], before - (0.07, 0.0, 0.0))  # the handle came along
    hold = fast_env.joint_positions()
    for _ in range(15):
        fast_env.step(hold)
    assert fast_env.privileged_state()["objects"]["drawer"]["opening"][0] > 0.06


def test_button_is_articulated(fast_env):
    """Pressing the cap down in the physics registers; released, the spring pushes it back."""
    fast_env.reset(task="press_button", seed=2)
    m, d = fast_env.model, fast_env.data
    adr = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "button")]
    d.qpos[adr] = -0.01
    mujoco.mj_forward(m, d)
    assert fast_env.task.success(fast_env.privileged_state())
    hold = fast_env.joint_positions()
    for _ in range(15):
        fast_env.step(hold)
    assert fast_env.privileged_state()["objects"]["button"]["depth"][0] < 1e-3


@pytest.mark.parametrize("task", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_expert_solves_task(fast_env, task, seed):
    expert = ScriptedExpert(StateProxy(fast_env), max_joint_speed=1.5)
    info, actions = run_episode(fast_env, expert, task, seed, reseed=True)
    assert info["success"], f"{task} seed {seed}: expert failed in phase {expert.phase!r}"
    assert info["elapsed_steps"] < 0.75 * ALL_TASKS[task].max_steps
    assert actions.dtype == np.float32 and actions.shape[1] == 7
    assert np.abs(np.diff(actions[:, :6], axis=0)).max() / fast_env.dt <= 1.5 + 1e-3
    assert np.all(actions[:, 6] >= 0.0) and np.all(actions[:, 6] <= 0.08)


def test_expert_noise_is_seeded(fast_env):
    a = run_episode(fast_env, ScriptedExpert(fast_env, noise=0.01, seed=7), "push_to_goal", 3, reseed=True)
    b = run_episode(fast_env, ScriptedExpert(fast_env, noise=0.01, seed=7), "push_to_goal", 3, reseed=True)
    assert a[0]["success"] and np.array_equal(a[1], b[1])


@pytest.mark.slow
@pytest.mark.parametrize("task", NAMES)
def test_expert_success_rate_over_50_seeds(fast_env, task):
    expert = ScriptedExpert(fast_env)
    successes = sum(run_episode(fast_env, expert, task, seed, reseed=True)[0]["success"] for seed in range(50))
    assert successes >= 48, f"{task}: {successes}/50"


def test_every_object_is_in_view_and_the_marker_is_a_few_pixels():
    """The fixed camera frames every object of every layout; at 128 px the 1 cm marker is a few pixels."""
    env = SimEnv(image_size=128)
    red_pixels = []
    for seed in range(20):
        obs = env.reset(task="reach_marker", seed=seed)
        m, d = env.model, env.data
        cam = m.camera("front").id
        centre, rot = d.cam_xpos[cam], d.cam_xmat[cam].reshape(3, 3)
        focal = 64 / np.tan(np.radians(m.cam_fovy[cam]) / 2)
        for name, obj in env.privileged_state()["objects"].items():
            x, y, z = rot.T @ (obj["pos"] - centre)  # camera frame: looking along -z, y up
            col, row = 64 + focal * x / -z, 64 - focal * y / -z
            assert 4 <= col <= 124 and 4 <= row <= 124, f"seed {seed}: {name} at pixel ({col:.0f}, {row:.0f})"
        image = obs["image"].astype(int)
        red_pixels.append(int(((image[..., 0] > 150) & (image[..., 1] < 70) & (image[..., 2] < 70)).sum()))
    env.close()
    assert sum(n > 0 for n in red_pixels) >= 15, red_pixels  # the arm may hide it at the start
    assert max(red_pixels) <= 12, red_pixels  # small: a few pixels, not a blob


def test_the_marker_stands_on_the_table_so_one_camera_sees_its_height():
    """A floating 1 cm sphere has no depth cue in one fixed view; its stand reaches from the
    sphere down into the table for every height a layout draws, so its foot on the table shows
    where the marker is."""
    env = SimEnv(render_images=False)
    env.reset(task="reach_marker", seed=0)  # the workbench's model
    m = env.model
    stand = m.geom("marker_stand")
    radius, half = stand.size[0], stand.size[1]
    top, bottom = stand.pos[2] + half, stand.pos[2] - half  # relative to the sphere's centre
    assert m.geom_contype[stand.id] == 0 and m.geom_conaffinity[stand.id] == 0  # visual only
    assert radius <= 0.004 and abs(top) <= 0.005 + 1e-9  # thin, and it ends at the sphere
    for seed in range(30):
        env.reset(task="reach_marker", seed=seed)
        z = env.privileged_state()["objects"]["marker"]["pos"][2]
        assert z + bottom < 0.0, f"seed {seed}: the stand ends {z + bottom:.3f} m above the table"
    env.close()
