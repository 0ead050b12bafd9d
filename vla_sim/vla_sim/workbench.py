"""The workbench scene (assets/workbench.xml): layout sampling, state read-out and task checks.

A second scene family beside the cube table, built to differ from it where generalisation is
tested: one fixed camera and no wrist camera, small visual targets (a 1 cm marker floating above
the table, a 1 cm dot at the centre of the goal disc), a contact-rich task (pushing a puck, which
is never grasped) and articulated ones (a spring-loaded button, a drawer pulled open by its
handle). Positions are drawn from the seed: the marker in 3 dimensions, the puck, the goal, the
button and the cabinet in 2.

Nothing here imports ``vla_sim.tasks`` (which registers the workbench tasks from these checks);
the functions read the dictionary of ``SimEnv.privileged_state()`` like the cube tasks do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import mujoco
import numpy as np

WORKBENCH_XML = Path(__file__).resolve().parent / "assets" / "workbench.xml"
CAMERAS: tuple[str, ...] = ("front",)  # the scene's only camera

# What privileged_state()["objects"] holds in this scene (each with pos, quat, linvel).
OBJECT_NAMES: tuple[str, ...] = ("marker", "puck", "goal", "button", "drawer", "peg", "socket")
CONTACT_OBJECTS: tuple[str, ...] = ("puck", "button", "drawer", "peg")  # bodies whose contacts are reported

# Geometry (must match assets/workbench.xml).
MARKER_RADIUS = 0.005  # m, 1 cm sphere
PUCK_RADIUS = 0.025  # m
PUCK_HALF_HEIGHT = 0.015  # m
GOAL_RADIUS = 0.03  # m, the green disc
BUTTON_TOP = 0.037  # m, z of the released button cap's top (housing 0.025 + cap 0.012)
BUTTON_RADIUS = 0.012  # m
BUTTON_TRAVEL = 0.014  # m
CABINET_HALF_DEPTH = 0.06  # m, cabinet centre to its front face (towards the robot, -x)
HANDLE_OFFSET = 0.055  # m, drawer front face to the handle bar's axis (-x)
HANDLE_GAP = (0.01, 0.049)  # m, free space behind the bar, measured from its axis towards the drawer front
HANDLE_HEIGHT = 0.04  # m, z of the handle bar's axis
DRAWER_TRAVEL = 0.10  # m
PEG_HALF_WIDTH = 0.01  # m
PEG_HALF_HEIGHT = 0.03  # m
SOCKET_HALF_WIDTH = 0.013  # m, half the side of the square hole
SOCKET_DEPTH = 0.025  # m

# Layout regions (m). The marker floats above everything else (the fingertips stay above the
# puck, the button housing and the handle when the tool centre is at the marker); the button
# sits on the robot's left, the puck and the goal on its right, so a push never runs into the
# button; the cabinet stands at the far side, beyond where a push or a reach goes.
MARKER_X, MARKER_Y, MARKER_Z = (0.28, 0.50), (-0.20, 0.20), (0.07, 0.20)
PUCK_X, PUCK_Y = (0.32, 0.44), (-0.18, 0.02)
GOAL_X, GOAL_Y = (0.28, 0.46), (-0.22, 0.05)
PUSH_DIST = (0.08, 0.15)  # m, puck centre to goal centre at reset
BUTTON_X, BUTTON_Y = (0.30, 0.50), (0.12, 0.22)
CABINET_X, CABINET_Y = (0.64, 0.68), (-0.10, 0.10)
PEG_X, PEG_Y = (0.28, 0.36), (0.27, 0.35)  # beyond the button, on the robot's left
SOCKET_X, SOCKET_Y = (0.43, 0.52), (0.27, 0.36)
LAYOUT_MAX_TRIES = 10_000

# Success thresholds.
REACH_TOL = 0.01  # m, tool-centre point to marker centre
PUSH_TOL = 0.02  # m, puck centre to goal centre (horizontal); the puck then lies mostly on the disc
PRESS_DEPTH = 0.008  # m, button cap pushed down at least this far
OPEN_DISTANCE = 0.06  # m, drawer pulled out at least this far
INSERT_DEPTH = 0.012  # m, the peg's bottom at least this far below the socket's rim
INSERT_XY_TOL = 0.006  # m, peg axis to hole centre
STILL_SPEED = 0.05  # m/s, a pushed puck moving slower than this is at rest

State = Mapping[str, Any]


# ---------------------------------------------------------------------- layout (SimEnv.reset)
def sample_layout(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Positions of marker (x, y, z), puck, goal, button, cabinet and socket (x, y), and the
    peg's (x, y, yaw) drawn from ``rng``."""
    marker = np.array([rng.uniform(*MARKER_X), rng.uniform(*MARKER_Y), rng.uniform(*MARKER_Z)])
    for _ in range(LAYOUT_MAX_TRIES):
        puck = np.array([rng.uniform(*PUCK_X), rng.uniform(*PUCK_Y)])
        angle, dist = rng.uniform(-np.pi, np.pi), rng.uniform(*PUSH_DIST)
        goal = puck + dist * np.array([np.cos(angle), np.sin(angle)])
        if GOAL_X[0] <= goal[0] <= GOAL_X[1] and GOAL_Y[0] <= goal[1] <= GOAL_Y[1]:
            break
    else:  # pragma: no cover - the regions make this practically impossible
        raise RuntimeError("could not place the push goal inside its region")
    button = np.array([rng.uniform(*BUTTON_X), rng.uniform(*BUTTON_Y)])
    cabinet = np.array([rng.uniform(*CABINET_X), rng.uniform(*CABINET_Y)])
    peg = np.array([rng.uniform(*PEG_X), rng.uniform(*PEG_Y), rng.uniform(-np.pi / 4, np.pi / 4)])
    socket = np.array([rng.uniform(*SOCKET_X), rng.uniform(*SOCKET_Y)])
    return {"marker": marker, "puck": puck, "goal": goal, "button": button, "cabinet": cabinet, "peg": peg,
            "socket": socket}


class WorkbenchState:
    """Binds the workbench model's objects: places them at reset, reads them for privileged_state()."""

    def __init__(self, model: mujoco.MjModel) -> None:
        m = model

        def body(name: str) -> int:
            return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)

        def joint(name: str) -> int:
            return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)

        self._mocap = {name: int(m.body_mocapid[body(b)]) for name, b in
                       (("marker", "marker"), ("goal", "goal"), ("button", "button_housing"),
                        ("cabinet", "cabinet"), ("socket", "socket"))}
        self._puck_q = int(m.jnt_qposadr[joint("puck")])
        self._puck_v = int(m.jnt_dofadr[joint("puck")])
        self._button_q = int(m.jnt_qposadr[joint("button")])
        self._button_v = int(m.jnt_dofadr[joint("button")])
        self._button_body = body("button")
        self._drawer_q = int(m.jnt_qposadr[joint("drawer")])
        self._drawer_v = int(m.jnt_dofadr[joint("drawer")])
        self._drawer_body = body("drawer")
        self._peg_q = int(m.jnt_qposadr[joint("peg")])
        self._peg_v = int(m.jnt_dofadr[joint("peg")])
        self.contact_bodies = {"puck": body("puck"), "button": body("button"), "drawer": body("drawer"),
                               "peg": body("peg")}

    def place(self, rng: np.random.Generator, data: mujoco.MjData) -> None:
        """Draw a layout from ``rng`` and write it into ``data`` (after mj_resetData, before mj_forward)."""
        layout = sample_layout(rng)
        data.mocap_pos[self._mocap["marker"]] = layout["marker"]
        data.mocap_pos[self._mocap["goal"]] = (*layout["goal"], 0.0)
        data.mocap_pos[self._mocap["button"]] = (*layout["button"], 0.0)
        data.mocap_pos[self._mocap["cabinet"]] = (*layout["cabinet"], 0.0)
        data.mocap_pos[self._mocap["socket"]] = (*layout["socket"], 0.0)
        q, (x, y, yaw) = self._peg_q, layout["peg"]
        data.qpos[q : q + 3] = (x, y, PEG_HALF_HEIGHT)
        data.qpos[q + 3 : q + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        q = self._puck_q
        data.qpos[q : q + 3] = (*layout["puck"], PUCK_HALF_HEIGHT)
        data.qpos[q + 3 : q + 7] = (1.0, 0.0, 0.0, 0.0)

    def objects(self, data: mujoco.MjData) -> dict[str, dict[str, np.ndarray]]:
        """{name: {pos, quat, linvel}}; the button's pos is the centre of its cap's top, plus its
        ``depth``; the drawer's pos is the centre of its handle bar, plus its ``opening``; the
        socket's pos is the centre of its hole's floor (on the table)."""
        identity, still = np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3)
        q, v = self._puck_q, self._puck_v
        button_q = float(data.qpos[self._button_q])
        button_top = data.xpos[self._button_body] + (0.0, 0.0, 2 * 0.006)
        return {
            "marker": {"pos": data.mocap_pos[self._mocap["marker"]].copy(), "quat": identity.copy(),
                       "linvel": still.copy()},
            "puck": {"pos": data.qpos[q : q + 3].copy(), "quat": data.qpos[q + 3 : q + 7].copy(),
                     "linvel": data.qvel[v : v + 3].copy()},
            "goal": {"pos": data.mocap_pos[self._mocap["goal"]].copy(), "quat": identity.copy(),
                     "linvel": still.copy()},
            "button": {"pos": button_top.copy(), "quat": identity.copy(),
                       "linvel": np.array([0.0, 0.0, float(data.qvel[self._button_v])]),
                       "depth": np.array([max(0.0, -button_q)])},
            "drawer": {"pos": data.xpos[self._drawer_body] + (-HANDLE_OFFSET, 0.0, 0.0), "quat": identity.copy(),
                       "linvel": np.array([-float(data.qvel[self._drawer_v]), 0.0, 0.0]),
                       "opening": np.array([float(data.qpos[self._drawer_q])])},
            "peg": {"pos": data.qpos[self._peg_q : self._peg_q + 3].copy(),
                    "quat": data.qpos[self._peg_q + 3 : self._peg_q + 7].copy(),
                    "linvel": data.qvel[self._peg_v : self._peg_v + 3].copy()},
            "socket": {"pos": data.mocap_pos[self._mocap["socket"]].copy(), "quat": identity.copy(),
                       "linvel": still.copy()},
        }


# ---------------------------------------------------------------------- success and reward
def _pos(state: State, obj: str) -> np.ndarray:
    return np.asarray(state["objects"][obj]["pos"], dtype=np.float64)


def marker_distance(state: State) -> float:
    """Distance (m) from the tool-centre point to the marker centre."""
    return float(np.linalg.norm(np.asarray(state["ee_pos"], dtype=np.float64) - _pos(state, "marker")))


def reach_success(state: State) -> bool:
    """The tool-centre point is within REACH_TOL of the 1 cm marker."""
    return marker_distance(state) < REACH_TOL


def reach_reward(state: State) -> float:
    """1 on success, else 0.99 * (1 - tanh(10 d)) of the marker distance d."""
    if reach_success(state):
        return 1.0
    return float(0.99 * (1.0 - np.tanh(10.0 * marker_distance(state))))


def goal_distance(state: State) -> float:
    """Horizontal distance (m) from the puck centre to the goal centre."""
    return float(np.linalg.norm(_pos(state, "puck")[:2] - _pos(state, "goal")[:2]))


def push_success(state: State) -> bool:
    """The puck rests on the table with its centre within PUSH_TOL of the goal centre."""
    puck = state["objects"]["puck"]
    speed = float(np.linalg.norm(np.asarray(puck.get("linvel", np.zeros(3)))[:2]))
    on_table = abs(float(puck["pos"][2]) - PUCK_HALF_HEIGHT) < 0.005
    return goal_distance(state) < PUSH_TOL and on_table and speed < STILL_SPEED


def push_reward(state: State) -> float:
    """Dense push reward in [0, 1]: tool near the puck (0.2) + puck near the goal (0.79)."""
    if push_success(state):
        return 1.0
    to_puck = float(np.linalg.norm(np.asarray(state["ee_pos"])[:2] - _pos(state, "puck")[:2]))
    reach = 1.0 - np.tanh(10.0 * max(0.0, to_puck - PUCK_RADIUS))
    closeness = 1.0 - np.tanh(10.0 * goal_distance(state))
    return float(np.clip(0.2 * reach + 0.79 * closeness, 0.0, 0.99))


def button_depth(state: State) -> float:
    """How far (m) the button cap is pushed in."""
    return float(np.asarray(state["objects"]["button"].get("depth", [0.0])).reshape(-1)[0])


def press_success(state: State) -> bool:
    """The button cap is pushed in at least PRESS_DEPTH."""
    return button_depth(state) >= PRESS_DEPTH


def press_reward(state: State) -> float:
    """Dense press reward in [0, 1]: tool near the cap (0.5) + depth (0.49)."""
    if press_success(state):
        return 1.0
    reach = 1.0 - np.tanh(10.0 * float(np.linalg.norm(np.asarray(state["ee_pos"]) - _pos(state, "button"))))
    depth = float(np.clip(button_depth(state) / PRESS_DEPTH, 0.0, 1.0))
    return float(np.clip(0.5 * reach + 0.49 * depth, 0.0, 0.99))


def drawer_opening(state: State) -> float:
    """How far (m) the drawer is pulled out."""
    return float(np.asarray(state["objects"]["drawer"].get("opening", [0.0])).reshape(-1)[0])


def open_success(state: State) -> bool:
    """The drawer is pulled out at least OPEN_DISTANCE."""
    return drawer_opening(state) >= OPEN_DISTANCE


def open_reward(state: State) -> float:
    """Dense drawer reward in [0, 1]: tool near the handle (0.3) + opening (0.69)."""
    if open_success(state):
        return 1.0
    reach = 1.0 - np.tanh(10.0 * float(np.linalg.norm(np.asarray(state["ee_pos"]) - _pos(state, "drawer"))))
    opening = float(np.clip(drawer_opening(state) / OPEN_DISTANCE, 0.0, 1.0))
    return float(np.clip(0.3 * reach + 0.69 * opening, 0.0, 0.99))


def peg_insertion(state: State) -> tuple[float, float]:
    """(horizontal offset of the peg axis from the hole centre, depth of the peg's bottom below the rim), m."""
    peg, socket = _pos(state, "peg"), _pos(state, "socket")
    bottom = peg[2] - PEG_HALF_HEIGHT  # the peg stands upright when inserted
    return float(np.linalg.norm(peg[:2] - socket[:2])), float(socket[2] + SOCKET_DEPTH - bottom)


def insert_success(state: State) -> bool:
    """The peg stands in the socket's hole, its bottom at least INSERT_DEPTH below the rim."""
    offset, depth = peg_insertion(state)
    return offset < INSERT_XY_TOL and depth >= INSERT_DEPTH


def insert_reward(state: State) -> float:
    """Dense insertion reward in [0, 1]: tool near the peg (0.2), peg lifted (0.2), over the hole (0.3), in (0.29)."""
    if insert_success(state):
        return 1.0
    peg = _pos(state, "peg")
    reach = 1.0 - np.tanh(10.0 * float(np.linalg.norm(np.asarray(state["ee_pos"]) - peg)))
    lifted = float(np.clip((peg[2] - PEG_HALF_HEIGHT) / 0.03, 0.0, 1.0))
    offset, depth = peg_insertion(state)
    over = 1.0 - np.tanh(20.0 * offset)
    inside = float(np.clip(depth / INSERT_DEPTH, 0.0, 1.0)) if offset < INSERT_XY_TOL else 0.0
    return float(np.clip(0.2 * reach + 0.2 * max(lifted, inside) + 0.3 * over + 0.29 * inside, 0.0, 0.99))
