"""Task definitions of the table-top scene: instruction, time limit, success check, dense reward.

All tasks share one scene (three cubes are always present); only the instruction says which
cube is meant. ``success(state)`` and ``reward(state)`` read the dictionary returned by
``SimEnv.privileged_state()``; besides the keys the expert uses they need
``contacts`` (names of the bodies touching each object) and each object's ``linvel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

TABLE_HEIGHT = 0.0  # m, z of the table top
CUBE_SIZE = 0.04  # m, cube side
LIFT_HEIGHT = 0.05  # m, a picked cube's bottom must be this far above the table
STACK_XY_TOL = 0.02  # m, horizontal offset allowed between stacked cubes
STACK_Z_TOL = 0.01  # m, vertical offset allowed around one cube height
STILL_SPEED = 0.05  # m/s, a placed cube moving slower than this is at rest
FINGERS = ("finger_left", "finger_right")  # bodies of the two finger pads
GRIPPER_BODIES = (*FINGERS, "link6")  # everything of the gripper that can touch a cube

State = Mapping[str, Any]

# The skills the scripted expert has in each scene (assets/scene.xml, assets/workbench.xml).
SCENE_KINDS: dict[str, tuple[str, ...]] = {"tabletop": ("pick", "stack"), "workbench": ("reach", "push", "press", "open", "insert")}


def _pos(state: State, obj: str) -> np.ndarray:
    return np.asarray(state["objects"][obj]["pos"], dtype=np.float64)


def _contacts(state: State, obj: str) -> tuple[str, ...]:
    return tuple(state.get("contacts", {}).get(obj, ()))


def is_grasped(state: State, obj: str) -> bool:
    """Both finger pads touch ``obj``."""
    touching = _contacts(state, obj)
    return all(f in touching for f in FINGERS)


def lift_of(state: State, obj: str) -> float:
    """Height (m) of the bottom of ``obj`` above the table top."""
    return float(_pos(state, obj)[2] - CUBE_SIZE / 2 - TABLE_HEIGHT)


def _reach_score(state: State, obj: str) -> float:
    dist = float(np.linalg.norm(np.asarray(state["ee_pos"]) - _pos(state, obj)))
    return float(1.0 - np.tanh(10.0 * dist))


def pick_success(state: State, obj: str) -> bool:
    """``obj`` is lifted at least LIFT_HEIGHT above the table and held by both fingers."""
    return lift_of(state, obj) >= LIFT_HEIGHT and is_grasped(state, obj)


def pick_reward(state: State, obj: str) -> float:
    """Dense pick reward in [0, 1]: reaching (0.3) + grasp (0.2) + lift while grasped (0.5)."""
    if pick_success(state, obj):
        return 1.0
    grasped = is_grasped(state, obj)
    lift = float(np.clip(lift_of(state, obj) / LIFT_HEIGHT, 0.0, 1.0)) if grasped else 0.0
    return float(np.clip(0.3 * _reach_score(state, obj) + 0.2 * grasped + 0.5 * lift, 0.0, 0.99))


def stack_offset(state: State, top: str, bottom: str) -> tuple[float, float]:
    """Horizontal distance and vertical offset minus one cube height between two cubes (m)."""
    delta = _pos(state, top) - _pos(state, bottom)
    return float(np.linalg.norm(delta[:2])), float(delta[2] - CUBE_SIZE)


def stack_success(state: State, top: str, bottom: str) -> bool:
    """``top`` rests on ``bottom``: aligned, one cube height up, not touched by the gripper, at rest."""
    dxy, dz = stack_offset(state, top, bottom)
    speed = float(np.linalg.norm(state["objects"][top].get("linvel", np.zeros(3))))
    return (
        dxy < STACK_XY_TOL
        and abs(dz) < STACK_Z_TOL
        and not any(body in GRIPPER_BODIES for body in _contacts(state, top))
        and speed < STILL_SPEED
    )


def stack_reward(state: State, top: str, bottom: str) -> float:
    """Dense stack reward in [0, 1]: pick ``top`` (0.5), then bring it over ``bottom`` (0.45)."""
    if stack_success(state, top, bottom):
        return 1.0
    pick = pick_reward(state, top)
    if not is_grasped(state, top) or lift_of(state, top) < 0.01:
        dxy, dz = stack_offset(state, top, bottom)
        placed = dxy < STACK_XY_TOL and abs(dz) < STACK_Z_TOL
        return 0.9 if placed else 0.5 * pick
    dxy, dz = stack_offset(state, top, bottom)
    closeness = 1.0 - np.tanh(10.0 * float(np.hypot(dxy, max(dz, 0.0))))
    return float(np.clip(0.5 + 0.45 * closeness, 0.0, 0.99))


@dataclass(frozen=True)
class Task:
    """One task of the scene: what to say, how long it may take, and how it is judged."""

    name: str
    instruction: str  # the language command given to the policy
    max_steps: int  # control ticks before the episode times out
    objects: tuple[str, ...]  # objects the instruction refers to, the one to move first
    success_fn: Callable[[State], bool]
    reward_fn: Callable[[State], float]
    kind: str  # "pick" or "stack" (table-top); "reach", "push", "press", "open" or "insert" (workbench): the expert's skill
    scene: str = "tabletop"  # which MJCF scene SimEnv loads for the task: a key of SCENES

    def __post_init__(self) -> None:
        if self.max_steps <= 0:
            raise ValueError(f"task {self.name!r}: max_steps must be positive, got {self.max_steps}")
        kinds = SCENE_KINDS.get(self.scene)
        if kinds is None:
            raise ValueError(f"task {self.name!r}: unknown scene {self.scene!r}; expected one of {sorted(SCENE_KINDS)}")
        if self.kind not in kinds:
            raise ValueError(f"task {self.name!r}: kind must be 'pick' or 'stack', got {self.kind!r}"
                             if self.scene == "tabletop" else
                             f"task {self.name!r}: kind must be one of {kinds} in scene {self.scene!r}, got {self.kind!r}")

    def success(self, state: State) -> bool:
        """Whether the privileged state satisfies the task."""
        return bool(self.success_fn(state))

    def reward(self, state: State) -> float:
        """Dense reward in [0, 1]; 1.0 exactly on success."""
        return float(self.reward_fn(state))


def _pick(color: str) -> Task:
    obj = f"{color}_cube"
    return Task(
        name=f"pick_{color}",
        instruction=f"pick up the {color} cube",
        max_steps=240,  # 8 s at 30 Hz
        objects=(obj,),
        success_fn=lambda s: pick_success(s, obj),
        reward_fn=lambda s: pick_reward(s, obj),
        kind="pick",
    )


def _stack(top_color: str, bottom_color: str) -> Task:
    top, bottom = f"{top_color}_cube", f"{bottom_color}_cube"
    return Task(
        name=f"stack_{top_color}_on_{bottom_color}",
        instruction=f"put the {top_color} cube on the {bottom_color} cube",
        max_steps=360,  # 12 s at 30 Hz
        objects=(top, bottom),
        success_fn=lambda s: stack_success(s, top, bottom),
        reward_fn=lambda s: stack_reward(s, top, bottom),
        kind="stack",
    )


TASKS: dict[str, Task] = {
    t.name: t for t in (_pick("red"), _pick("green"), _pick("blue"), _stack("green", "red"))
}


# ---------------------------------------------------------------------------------------------
# The workbench scene (vla_sim.workbench): one fixed camera, small targets, contact and
# articulated objects (a button, a drawer). Its tasks live in their own registry so that every "all tasks" in the
# project (TASKS: vla collect/evaluate/demo --tasks all, the benchmarks) keeps meaning the four
# cube tasks above, and the demo's data do not change; SimEnv and ScriptedExpert accept the
# names of ALL_TASKS.
def _workbench_tasks() -> dict[str, Task]:
    from vla_sim import workbench as wb

    tasks = (
        Task(name="reach_marker", instruction="touch the red marker with the gripper", max_steps=150,
             objects=("marker",), success_fn=wb.reach_success, reward_fn=wb.reach_reward, kind="reach",
             scene="workbench"),
        Task(name="push_to_goal", instruction="push the blue puck onto the green goal", max_steps=450,
             objects=("puck", "goal"), success_fn=wb.push_success, reward_fn=wb.push_reward, kind="push",
             scene="workbench"),
        Task(name="press_button", instruction="press the yellow button", max_steps=180,
             objects=("button",), success_fn=wb.press_success, reward_fn=wb.press_reward, kind="press",
             scene="workbench"),
        Task(name="open_drawer", instruction="pull the drawer open by its handle", max_steps=240,
             objects=("drawer",), success_fn=wb.open_success, reward_fn=wb.open_reward, kind="open",
             scene="workbench"),
        Task(name="insert_peg", instruction="put the orange peg into the purple socket", max_steps=450,
             objects=("peg", "socket"), success_fn=wb.insert_success, reward_fn=wb.insert_reward, kind="insert",
             scene="workbench"),
    )
    return {t.name: t for t in tasks}


WORKBENCH_TASKS: dict[str, Task] = _workbench_tasks()
ALL_TASKS: dict[str, Task] = {**TASKS, **WORKBENCH_TASKS}  # every task SimEnv can reset to
SUITES: dict[str, tuple[str, ...]] = {"tabletop": tuple(TASKS), "workbench": tuple(WORKBENCH_TASKS)}


def resolve_tasks(spec: str) -> list[str]:
    """Task names from a ``--tasks`` value: ``"all"`` (the cube table's four tasks, as everywhere),
    a suite name of ``SUITES`` (``tabletop``, ``workbench``), or comma-separated task and suite
    names, in order, without repeats. ``ValueError`` names the valid choices."""
    names: list[str] = []
    items = [*TASKS] if spec.strip() == "all" else [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in items if t not in SUITES and t not in ALL_TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid: 'all', a suite ({', '.join(SUITES)}) or "
                         f"task names ({', '.join(ALL_TASKS)})")
    for item in items:
        names.extend(t for t in SUITES.get(item, (item,)) if t not in names)
    if not names:
        raise ValueError(f"no task given; valid: 'all', a suite ({', '.join(SUITES)}) or task names")
    return names
