"""Task registry, success checks and rewards, on synthetic states and on placed objects."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import dataclasses

import mujoco
import numpy as np
import pytest

from vla_sim import TASKS, SimEnv, Task

CUBES = ("red_cube", "green_cube", "blue_cube")


def make_state(positions: dict, contacts: dict | None = None, ee=(0.35, 0.0, 0.25), linvel=None) -> dict:
    """A privileged state with cubes resting on the table unless ``positions`` says otherwise."""
    default = {"red_cube": (0.35, -0.1, 0.02), "green_cube": (0.45, 0.0, 0.02), "blue_cube": (0.35, 0.12, 0.02)}
    default.update(positions)
    return {
        "task": None,
        "ee_pos": np.array(ee, dtype=float),
        "objects": {
            name: {"pos": np.array(p, dtype=float), "quat": np.array([1.0, 0, 0, 0]),
                   "linvel": np.array((linvel or {}).get(name, (0.0, 0.0, 0.0)))}
            for name, p in default.items()
        },
        "contacts": {name: ("table",) for name in CUBES} | (contacts or {}),
    }


def test_registry():
    assert {"pick_red", "pick_green", "pick_blue", "stack_green_on_red"} <= set(TASKS)
    assert TASKS["pick_red"].instruction == "pick up the red cube"
    assert TASKS["pick_green"].instruction == "pick up the green cube"
    assert TASKS["pick_blue"].instruction == "pick up the blue cube"
    assert TASKS["stack_green_on_red"].instruction == "put the green cube on the red cube"
    assert TASKS["pick_red"].max_steps == 240 and TASKS["stack_green_on_red"].max_steps == 360
    assert TASKS["stack_green_on_red"].objects == ("green_cube", "red_cube")
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        TASKS["pick_red"].max_steps = 1


def test_task_validation():
    task = TASKS["pick_red"]
    with pytest.raises(ValueError, match="max_steps"):
        dataclasses.replace(task, max_steps=0)
    with pytest.raises(ValueError, match="kind"):
        dataclasses.replace(task, kind="dance")


@pytest.mark.parametrize("color", ["red", "green", "blue"])
def test_pick_success(color):
    task, cube = TASKS[f"pick_{color}"], f"{color}_cube"
    held = {cube: ("finger_left", "finger_right")}
    lifted = make_state({cube: (0.4, 0.0, 0.08)}, held, ee=(0.4, 0.0, 0.085))
    assert task.success(lifted) and task.reward(lifted) == 1.0
    # Lifted but only one finger touches it, or held but not high enough, or resting on the table.
    assert not task.success(make_state({cube: (0.4, 0.0, 0.08)}, {cube: ("finger_left",)}))
    low = make_state({cube: (0.4, 0.0, 0.05)}, held, ee=(0.4, 0.0, 0.055))
    assert not task.success(low) and 0.5 < task.reward(low) < 1.0
    resting = make_state({})
    assert not task.success(resting) and 0.0 <= task.reward(resting) < 0.3
    # Another cube lifted does not count.
    other = next(c for c in CUBES if c != cube)
    assert not task.success(make_state({other: (0.4, 0.0, 0.08)}, {other: ("finger_left", "finger_right")}))


def test_stack_success_and_reward_progress():
    task = TASKS["stack_green_on_red"]
    on_top = make_state({"red_cube": (0.4, 0.05, 0.02), "green_cube": (0.41, 0.055, 0.06)}, ee=(0.4, 0.05, 0.2))
    assert task.success(on_top) and task.reward(on_top) == 1.0
    off_centre = make_state({"red_cube": (0.4, 0.05, 0.02), "green_cube": (0.425, 0.05, 0.06)})
    still_held = make_state({"red_cube": (0.4, 0.05, 0.02), "green_cube": (0.4, 0.05, 0.06)},
                            {"green_cube": ("finger_left", "finger_right", "red_cube")})
    moving = make_state({"red_cube": (0.4, 0.05, 0.02), "green_cube": (0.4, 0.05, 0.06)},
                        linvel={"green_cube": (0.0, 0.0, -0.2)})
    too_high = make_state({"red_cube": (0.4, 0.05, 0.02), "green_cube": (0.4, 0.05, 0.075)})
    reversed_ = make_state({"green_cube": (0.4, 0.05, 0.02), "red_cube": (0.4, 0.05, 0.06)})
    for state in (off_centre, still_held, moving, too_high, reversed_):
        assert not task.success(state)
        assert 0.0 <= task.reward(state) < 1.0
    # Reward grows through the stages: nothing, green lifted, green carried above red.
    start = task.reward(make_state({}))
    held = {"green_cube": ("finger_left", "finger_right")}
    lifted = task.reward(make_state({"green_cube": (0.45, 0.0, 0.1)}, held, ee=(0.45, 0.0, 0.105)))
    above = task.reward(make_state({"red_cube": (0.35, -0.1, 0.02), "green_cube": (0.35, -0.1, 0.07)}, held,
                                   ee=(0.35, -0.1, 0.075)))
    assert start < lifted < above < 1.0


def _place(env: SimEnv, name: str, pos, yaw: float = 0.0) -> None:
    adr = env.model.jnt_qposadr[mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, name)]
    env.data.qpos[adr : adr + 3] = pos
    env.data.qpos[adr + 3 : adr + 7] = (np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))
    mujoco.mj_forward(env.model, env.data)


def test_stack_success_in_simulation():
    """Green placed on red by qpos settles into a success; green beside red does not."""
    env = SimEnv(render_images=False)
    hold = env.reset(task="stack_green_on_red", seed=0)["joint_positions"]
    red = env.privileged_state()["objects"]["red_cube"]["pos"]
    _place(env, "green_cube", red + (0.005, 0.0, 0.0405), yaw=0.3)
    infos = [env.step(hold)[3] for _ in range(5)]
    assert infos[-1]["success"]

    env.reset(task="stack_green_on_red", seed=0)
    _place(env, "green_cube", red + (0.06, 0.0, 0.0))
    for _ in range(5):
        _, reward, done, info = env.step(hold)
    assert not info["success"] and not done and reward < 1.0


def test_pick_needs_grasp_in_simulation():
    """A red cube dropped from above (not held) is never a success while it falls."""
    env = SimEnv(render_images=False)
    hold = env.reset(task="pick_red", seed=1)["joint_positions"]
    red = env.privileged_state()["objects"]["red_cube"]["pos"]
    _place(env, "red_cube", red + (0.0, 0.0, 0.15))
    for _ in range(15):
        _, _, _, info = env.step(hold)
        assert not info["success"]
