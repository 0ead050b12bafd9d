"""End-effector (Cartesian delta) actions for the simulated arm, converted to joint targets.

An end-effector action is 7 numbers per control tick: a translation (3, m) and a rotation vector
(3, rad, world frame) applied to the *commanded* tool pose, and the gripper opening target (m,
absolute, as in the joint action). ``EEDeltaController`` keeps that commanded pose, applies each
delta (clipped to ``max_translation`` / ``max_rotation`` per tick, the position kept inside a
workspace box), and solves IK warm-started from its last solution to the 6 joint targets the
robot executes, so everything below it (joint limits, the safety layer's velocity limit, the
position actuators) stays as it is. ``delta_for(q)`` is the inverse: the action that moves the
commanded pose to the pose of joint targets ``q`` (how a joint-space expert labels EE actions).

Keeping the commanded pose, not the measured one, makes the integration drift-free and
deterministic: the same actions from the same reset give the same targets.
"""

from __future__ import annotations

import mujoco
import numpy as np

from vla_sim.kinematics import ArmKinematics, rotation_error

MAX_TRANSLATION = 0.01  # m per tick (0.3 m/s at 30 Hz)
MAX_ROTATION = 0.05  # rad per tick (1.5 rad/s at 30 Hz)
WORKSPACE_LOW = np.array([0.10, -0.45, 0.005])  # m, box the commanded tool-centre point stays in
WORKSPACE_HIGH = np.array([0.75, 0.45, 0.45])
GRIPPER_RANGE = (0.0, 0.08)  # m
#: names of the 7 numbers of an end-effector action (recorded as the episode's action names)
EE_ACTION_NAMES: tuple[str, ...] = ("ee_dx", "ee_dy", "ee_dz", "ee_rx", "ee_ry", "ee_rz", "gripper")
ACTION_MODES: tuple[str, ...] = ("joint", "ee_delta")


def action_mode_for(action_names) -> str:
    """The SimEnv ``action_mode`` whose actions carry ``action_names`` (a policy's or an episode's)."""
    return "ee_delta" if tuple(action_names) == EE_ACTION_NAMES else "joint"


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis * angle, rad)."""
    quat = np.empty(4)
    mujoco.mju_axisAngle2Quat(quat, np.asarray(rotvec, dtype=np.float64) / max(np.linalg.norm(rotvec), 1e-12),
                              float(np.linalg.norm(rotvec)))
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


class EEDeltaController:
    """Commanded tool pose integrated from EE deltas, and the joint targets that realise it."""

    def __init__(self, kinematics: ArmKinematics | None = None, max_translation: float = MAX_TRANSLATION,
                 max_rotation: float = MAX_ROTATION) -> None:
        self.kin = kinematics or ArmKinematics()
        self.max_translation = float(max_translation)
        self.max_rotation = float(max_rotation)
        self.action_low = np.array([-max_translation] * 3 + [-max_rotation] * 3 + [GRIPPER_RANGE[0]])
        self.action_high = np.array([max_translation] * 3 + [max_rotation] * 3 + [GRIPPER_RANGE[1]])
        self.pos = np.zeros(3)
        self.rot = np.eye(3)
        self.q = np.zeros(6)
        self.last_ik = None  # the IK solution of the last step (its ``converged``, errors)

    def reset(self, q_arm: np.ndarray) -> None:
        """Command the pose of the arm joints ``q_arm`` (6,), e.g. the measured start pose."""
        self.q = np.asarray(q_arm, dtype=np.float64)[:6].copy()
        self.pos, self.rot = self.kin.fk(self.q)

    def clip(self, action: np.ndarray) -> np.ndarray:
        """The action with its translation and rotation norms and gripper bounded (7,)."""
        a = np.asarray(action, dtype=np.float64).copy()
        for sl, limit in ((slice(0, 3), self.max_translation), (slice(3, 6), self.max_rotation)):
            norm = float(np.linalg.norm(a[sl]))
            if norm > limit:
                a[sl] *= limit / norm
        a[6] = np.clip(a[6], *GRIPPER_RANGE)
        return a

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        """Apply one EE action; returns the (7,) joint targets and whether anything was clipped."""
        action = np.asarray(action, dtype=np.float64)
        a = self.clip(action)
        target = np.clip(self.pos + a[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
        clipped = bool(np.any(a != action) or np.any(target != self.pos + a[:3]))
        rot = rotvec_to_matrix(a[3:6]) @ self.rot
        solution = self.kin.ik_pose(target, rot, self.q, max_iters=10)
        self.last_ik = solution
        self.q = solution.q
        if solution.converged:
            self.pos, self.rot = target, rot
        else:  # out of reach: command what the arm can do, so the target does not wind up
            self.pos, self.rot = self.kin.fk(self.q)
            clipped = True
        return np.append(self.q, a[6]), clipped

    def delta_for(self, q_target: np.ndarray) -> np.ndarray:
        """(7,) EE action that moves the commanded pose to the pose of joint targets ``q_target``
        (6 arm joints + gripper); not clipped, and the controller is not changed."""
        q_target = np.asarray(q_target, dtype=np.float64)
        pos, rot = self.kin.fk(q_target[:6])
        return np.concatenate([pos - self.pos, rotation_error(rot, self.rot), q_target[6:7]])
