"""Scripted expert of the workbench scene, and the ScriptedExpert that dispatches on a task's scene.

``WorkbenchExpert`` solves reach_marker, push_to_goal and press_button with the same machinery as
the cube scene's expert (vla_sim.expert): a commanded tool-centre point moved towards the current
waypoint at a bounded Cartesian speed, IK warm-started from the last solution, the change of every
joint target limited to ``max_joint_speed * dt``. The gripper stays closed (the closed fingers are
a 2.4 cm square pusher whose tips are 1.5 cm below the tool-centre point).

``ScriptedExpert`` here is the cube expert (unchanged for the cube tasks: it *is* that class, with
its state machine and noise stream) that hands workbench tasks to a ``WorkbenchExpert``;
``vla_sim.ScriptedExpert`` is this class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_sim import expert as cube_expert
from vla_sim import workbench as wb
from vla_sim.kinematics import ArmKinematics, tool_yaw
from vla_sim.tasks import ALL_TASKS, Task

GRIPPER_CLOSED = 0.0  # m: the fingers form a pusher
FINGERTIP_BELOW_TCP = 0.015  # m, fingertips below the tool-centre point (pads end 9 cm along the tool)
PUSHER_HALF_WIDTH = 0.012  # m, half the side of the closed fingers' square


class WorkbenchExpert:
    """Waypoint state machine for the workbench tasks (kinds "reach", "push", "press", "open").

    reach: approach 5 cm above the marker, descend onto it. press: approach above the button, push
    the cap down slowly. push: go behind the puck on the line from the goal through the puck, lower
    the fingertips to the puck's mid-height, push it along the (re-measured each tick) line to the
    goal; if the puck slips off the pusher, rise and start over. open: lower the fingers into the
    gap behind the drawer's handle bar, pull towards the robot.
    """

    hover = 0.05  # m above a marker / button before the final approach
    move_speed = 0.20  # m/s
    approach_speed = 0.06  # m/s, final approach to the marker / the button cap
    press_speed = 0.04  # m/s
    push_speed = 0.05  # m/s
    push_clearance = 0.03  # m, extra gap behind the puck before lowering
    push_height = 0.10  # m, travel height of the tool-centre point in the push task
    reach_tol = 0.008  # m
    yaw_speed = 1.0  # rad/s, tool rotation about the vertical
    phase_timeout = 150  # ticks in one phase before starting the attempt over

    def __init__(self, env: Any, max_joint_speed: float = 1.5, noise: float = 0.0, seed: int | None = None,
                 kinematics: ArmKinematics | None = None) -> None:
        self.env = env
        self.max_joint_speed = float(max_joint_speed)
        self.noise = float(noise)
        self.seed = seed
        self.kin = kinematics or ArmKinematics()
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self._rng = np.random.default_rng(self.seed)
        self.phase = "approach"
        self.attempts = 1
        self._task: Task | None = None
        self._q_cmd: np.ndarray | None = None
        self._q_ik: np.ndarray | None = None
        self._grip_cmd = GRIPPER_CLOSED
        self._p_cmd = np.zeros(3)
        self._yaw = 0.0
        self._yaw_target = 0.0
        self._grip_target = GRIPPER_CLOSED  # the fingers act as a pusher except in insert_peg
        self._last_opening = cube_expert.GRIPPER_OPEN
        self._anchor = np.zeros(3)
        self._grip_offset = np.zeros(3)
        self._rise_wp = np.zeros(3)
        self._ticks = 0

    def act(self, obs: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> np.ndarray:
        """(7,) float32 absolute joint targets for the next tick."""
        state = self.env.privileged_state() if state is None else state
        dt = float(state.get("dt", self.env.dt))
        q_meas = np.asarray(state["joint_positions"], dtype=np.float64)
        if self._q_cmd is None or self._task is None or self._task.name != state["task"]:
            self._start(ALL_TASKS[state["task"]], q_meas)
        target, speed = self._update_phase(state)
        self._ticks += 1
        yaw_step = self.yaw_speed * dt
        self._yaw += float(np.clip(self._yaw_target - self._yaw, -yaw_step, yaw_step))

        step = target - self._p_cmd
        dist = float(np.linalg.norm(step))
        max_step = speed * dt
        self._p_cmd = target.copy() if dist <= max_step else self._p_cmd + step * (max_step / dist)
        solution = self.kin.ik(self._p_cmd, self._yaw, self._q_ik, max_iters=8)
        self._q_ik = solution.q
        q_des = solution.q
        if self.noise > 0.0:
            perturbation = self._rng.normal(0.0, self.noise, size=6)
            if self.phase not in ("descend", "press", "push"):
                q_des = q_des + perturbation
        limit = self.max_joint_speed * dt
        self._q_cmd = np.clip(self._q_cmd + np.clip(q_des - self._q_cmd, -limit, limit), self.kin.lower, self.kin.upper)
        grip_step = cube_expert.ExpertConfig().gripper_speed * dt
        self._grip_cmd = float(np.clip(self._grip_cmd + np.clip(self._grip_target - self._grip_cmd, -grip_step, grip_step),
                                       GRIPPER_CLOSED, cube_expert.GRIPPER_OPEN))
        self._last_opening = float(q_meas[6])
        return np.append(self._q_cmd, self._grip_cmd).astype(np.float32)

    def _start(self, task: Task, q_meas: np.ndarray) -> None:
        self._task = task
        self._q_cmd = q_meas[:6].copy()
        self._q_ik = q_meas[:6].copy()
        self._grip_cmd = float(q_meas[6])
        pos, rot = self.kin.fk(self._q_cmd)
        self._p_cmd = pos
        self._yaw = tool_yaw(rot)
        self._yaw_target = self._yaw
        self._enter("approach")

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self._ticks = 0

    def _retry(self) -> None:
        self.attempts += 1
        self._enter("rise")

    # ------------------------------------------------------------------ state machine
    def _update_phase(self, state: dict[str, Any]) -> tuple[np.ndarray, float]:
        """Advance the state machine; returns (waypoint of the tool-centre point, speed)."""
        assert self._task is not None
        ee = np.asarray(state["ee_pos"], dtype=np.float64)
        objects = state["objects"]
        cmd_reached = lambda wp: float(np.linalg.norm(self._p_cmd - wp)) < 1e-4  # noqa: E731
        near = lambda wp: float(np.linalg.norm(ee - wp)) < self.reach_tol  # noqa: E731
        if self.phase == "rise":  # back up to a safe height, then start over
            if self._task.kind == "insert":
                self._grip_target = cube_expert.GRIPPER_OPEN
            wp = np.array([ee[0], ee[1], self.push_height]) if self._ticks == 0 else self._rise_wp
            self._rise_wp = wp
            if cmd_reached(wp) and near(wp):
                self._enter("approach")
            else:
                return wp, self.move_speed

        kind = self._task.kind
        if kind in ("reach", "press"):
            if kind == "reach":
                final = np.asarray(objects["marker"]["pos"], dtype=np.float64)
            else:  # fingertips 1.2 cm below the released cap's top: past PRESS_DEPTH
                final = np.asarray(objects["button"]["pos"], dtype=np.float64) + (0.0, 0.0, FINGERTIP_BELOW_TCP - 0.012)
            above = final + (0.0, 0.0, self.hover + (FINGERTIP_BELOW_TCP if kind == "press" else 0.0))
            if self.phase == "approach":
                if cmd_reached(above) and near(above):
                    self._enter("descend" if kind == "reach" else "press")
                else:
                    return above, self.move_speed
            if self.phase == "descend":
                return final, self.approach_speed
            if self.phase == "press":
                if self._ticks > self.phase_timeout:
                    self._retry()
                    return self._update_phase(state)
                return final, self.press_speed
            raise RuntimeError(f"workbench expert reached an unknown phase {self.phase!r}")

        if kind == "open":
            return self._open_drawer(state, ee, cmd_reached, near)
        if kind == "insert":
            return self._insert_peg(state, ee, cmd_reached, near)

        # push
        puck = np.asarray(objects["puck"]["pos"], dtype=np.float64)
        goal = np.asarray(objects["goal"]["pos"], dtype=np.float64)
        to_goal = goal[:2] - puck[:2]
        dist = float(np.linalg.norm(to_goal))
        u = to_goal / dist if dist > 1e-6 else np.array([1.0, 0.0])
        contact = wb.PUCK_RADIUS + PUSHER_HALF_WIDTH
        z_push = wb.PUCK_HALF_HEIGHT + FINGERTIP_BELOW_TCP
        behind = puck[:2] - u * (contact + self.push_clearance)
        # Turn a face of the square pusher to face the push direction (the faces repeat every 90
        # degrees: take the alignment nearest the current yaw), so the puck slides along the face
        # normal instead of off a corner.
        push_yaw = float(np.arctan2(u[1], u[0]))
        self._yaw_target = push_yaw + float(np.round((self._yaw - push_yaw) / (np.pi / 2))) * np.pi / 2
        yaw_ok = abs(self._yaw_target - self._yaw) < 0.05
        if self.phase == "approach":
            wp = np.array([*behind, self.push_height])
            if cmd_reached(wp) and near(wp) and yaw_ok:
                self._enter("lower")
            else:
                return wp, self.move_speed
        if self.phase == "lower":
            wp = np.array([*behind, z_push])
            if cmd_reached(wp) and near(wp):
                self._enter("push")
            else:
                return wp, self.approach_speed
        if self.phase == "push":
            rel = puck[:2] - ee[:2]  # pusher to puck
            along = float(rel @ u)
            lateral = float(abs(rel[0] * u[1] - rel[1] * u[0]))
            if along < 0.0 or lateral > 0.02 or float(np.linalg.norm(rel)) > contact + self.push_clearance + 0.03:
                self._retry()  # the puck slipped off the pusher
                return self._update_phase(state)
            if self._ticks > 3 * self.phase_timeout:
                self._retry()
                return self._update_phase(state)
            wp = np.array([*(puck[:2] - u * contact + u * min(0.01, dist)), z_push])
            return wp, self.push_speed
        raise RuntimeError(f"workbench expert reached an unknown phase {self.phase!r}")

    def _open_drawer(self, state: dict[str, Any], ee: np.ndarray, cmd_reached: Any, near: Any) -> tuple[np.ndarray, float]:
        """Phases approach (above the gap behind the handle), lower (into it), pull (along -x)."""
        handle = np.asarray(state["objects"]["drawer"]["pos"], dtype=np.float64)
        gap = handle + (0.5 * sum(wb.HANDLE_GAP), 0.0, 0.0)
        gap[2] = wb.HANDLE_HEIGHT - 0.02 + FINGERTIP_BELOW_TCP  # fingertips 2 cm below the bar's axis
        # Square faces along the world axes, the alignment nearest the current yaw.
        self._yaw_target = float(np.round(self._yaw / (np.pi / 2))) * np.pi / 2
        if self.phase == "approach":
            wp = gap + (0.0, 0.0, 0.08)
            if cmd_reached(wp) and near(wp) and abs(self._yaw_target - self._yaw) < 0.02:
                self._enter("lower")
            else:
                return wp, self.move_speed
        if self.phase == "lower":
            if cmd_reached(gap) and near(gap):
                self._enter("pull")
            elif self._ticks > self.phase_timeout:
                self._retry()
                return self._update_phase(state)
            else:
                return gap, self.approach_speed
        if self.phase == "pull":
            if self._ticks > self.phase_timeout or float(np.linalg.norm(ee[1:] - gap[1:])) > 0.02:
                self._retry()
                return self._update_phase(state)
            return gap - (0.03, 0.0, 0.0), self.push_speed
        raise RuntimeError(f"workbench expert reached an unknown phase {self.phase!r}")


    def _insert_peg(self, state: dict[str, Any], ee: np.ndarray, cmd_reached: Any, near: Any) -> tuple[np.ndarray, float]:
        """Phases approach, descend, close (grasp the peg near its top), lift, carry (over the hole,
        peg faces turned to the socket's), insert (lower until in); a dropped peg starts it over."""
        peg = np.asarray(state["objects"]["peg"]["pos"], dtype=np.float64)
        quat = np.asarray(state["objects"]["peg"]["quat"], dtype=np.float64)
        socket = np.asarray(state["objects"]["socket"]["pos"], dtype=np.float64)
        opening = float(state["joint_positions"][6])
        grasp = peg + (0.0, 0.0, wb.PEG_HALF_HEIGHT - FINGERTIP_BELOW_TCP)  # fingertips 3 cm below the top
        quarter = np.pi / 2
        if self.phase in ("approach", "descend"):
            w, x, y, z = quat
            peg_yaw = float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
            self._yaw_target = peg_yaw + float(np.round((self._yaw - peg_yaw) / quarter)) * quarter
            self._grip_target = cube_expert.GRIPPER_OPEN
        yaw_ok = abs(self._yaw_target - self._yaw) < 1e-3
        if self.phase == "approach":
            wp = grasp + (0.0, 0.0, 0.08)
            if cmd_reached(wp) and near(wp) and yaw_ok and opening > cube_expert.GRIPPER_OPEN - 0.01:
                self._enter("descend")
            else:
                return wp, self.move_speed
        if self.phase == "descend":
            if cmd_reached(grasp) and float(np.linalg.norm(ee - grasp)) < 0.005:
                self._anchor = grasp.copy()
                self._enter("close")
            elif self._ticks > self.phase_timeout:
                self._retry()
                return self._update_phase(state)
            else:
                return grasp, self.approach_speed
        if self.phase == "close":
            self._grip_target = GRIPPER_CLOSED
            settled = self._grip_cmd == GRIPPER_CLOSED and abs(opening - self._last_opening) < 2e-4
            if settled and self._ticks >= 6:
                if opening > wb.PEG_HALF_WIDTH:  # something 2 cm wide is between the fingers
                    self._grip_offset = ee - peg
                    self._anchor = self._anchor + (0.0, 0.0, 0.12)
                    self._enter("lift")
                else:
                    self._retry()
                    return self._update_phase(state)
            else:
                return self._anchor, self.approach_speed
        dropped = float(np.linalg.norm(ee - peg - self._grip_offset)) > 0.02 or opening < wb.PEG_HALF_WIDTH
        if self.phase in ("lift", "carry", "insert") and dropped:
            self._retry()
            return self._update_phase(state)
        if self.phase == "lift":
            if cmd_reached(self._anchor) and near(self._anchor):
                self._enter("carry")
            else:
                return self._anchor, 0.12
        # The peg's faces follow the tool's yaw: turn to the nearest multiple of 90 degrees (the socket's).
        self._yaw_target = float(np.round(self._yaw / quarter)) * quarter
        offset_xy = (ee - peg)[:2]
        if self.phase == "carry":
            wp = np.array([*(socket[:2] + offset_xy), self._anchor[2]])
            over = float(np.linalg.norm(peg[:2] - socket[:2])) < 0.002
            if cmd_reached(wp) and near(wp) and over and abs(self._yaw_target - self._yaw) < 1e-3:
                self._enter("insert")
            elif self._ticks > self.phase_timeout:
                self._retry()
                return self._update_phase(state)
            else:
                return wp, self.move_speed
        if self.phase == "insert":
            wp = np.array([*(socket[:2] + offset_xy), wb.PEG_HALF_HEIGHT + self._grip_offset[2] - 0.005])
            if self._ticks > self.phase_timeout:
                self._retry()
                return self._update_phase(state)
            return wp, 0.03
        raise RuntimeError(f"workbench expert reached an unknown phase {self.phase!r}")


class ScriptedExpert(cube_expert.ScriptedExpert):
    """vla_sim's scripted expert for every task of ``ALL_TASKS``: the cube expert for the table-top
    tasks (same actions, same noise stream), a ``WorkbenchExpert`` for the workbench tasks.

    ``phase`` and ``attempts`` are those of the expert acting in the current episode.
    """

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._workbench_expert: WorkbenchExpert | None = None

    def act(self, obs: dict[str, Any] | None = None) -> np.ndarray:
        state = self.env.privileged_state()
        task = ALL_TASKS.get(state.get("task"))
        if task is None or task.scene == "tabletop":
            return super().act(obs)
        if self._workbench_expert is None:
            self._workbench_expert = WorkbenchExpert(self.env, self.max_joint_speed, self.noise, self.seed, self.kin)
        action = self._workbench_expert.act(obs, state)
        self.phase, self.attempts = self._workbench_expert.phase, self._workbench_expert.attempts
        return action
