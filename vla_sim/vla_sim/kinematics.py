"""Forward and inverse kinematics of the simulated arm, computed on the MuJoCo model.

ArmKinematics owns its own MjModel/MjData (no rendering, no physics stepping), so it can
be used beside a running SimEnv, by the scripted expert, or by a Cartesian jogging node.
Everything works on the six arm joints (``joint1``..``joint6``); the gripper is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import mujoco
import numpy as np

SCENE_XML = Path(__file__).resolve().parent / "assets" / "scene.xml"
ARM_JOINT_NAMES: tuple[str, ...] = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
TCP_SITE = "tcp"


def rot_z(angle: float) -> np.ndarray:
    """Rotation matrix about the world z axis by ``angle`` rad."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def tool_down_rotation(yaw: float) -> np.ndarray:
    """Tool orientation pointing straight down, fingers closing along the rotated world y.

    ``yaw`` is the rotation of the tool about the world vertical; at yaw 0 the tool x axis
    points along world -x and the fingers close along world y.
    """
    flip = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])  # Ry(pi)
    return rot_z(yaw) @ flip


def tool_yaw(rot: np.ndarray) -> float:
    """Yaw (rotation about world z) of a tool orientation, inverse of tool_down_rotation."""
    x_axis = rot[:, 0]  # = (-cos yaw, -sin yaw, .) when pointing down
    return float(np.arctan2(-x_axis[1], -x_axis[0]))


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) rotating ``current`` onto ``target``."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).reshape(-1))
    if quat[0] < 0.0:
        quat = -quat
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class IKResult(NamedTuple):
    """Best joint solution found by ArmKinematics.ik and how far its pose is from the target."""

    q: np.ndarray  # (6,) arm joint positions, rad, within the joint ranges
    pos_error: float  # m, distance of the tool-centre point from the target position
    rot_error: float  # rad, angle between the tool orientation and the target orientation
    converged: bool  # both errors below the requested tolerances


class ArmKinematics:
    """FK and damped-least-squares IK of the tool-centre point (site ``tcp``) between the fingers.

    Joint limits come from the MJCF (``lower``/``upper``); every IK iterate is clipped to them.
    ``xml_path``, ``site`` and the six arm ``joint_names`` may describe another arm (a lab's MJCF).
    """

    def __init__(self, xml_path: str | Path = SCENE_XML, site: str = TCP_SITE,
                 joint_names: tuple[str, ...] | list[str] = ARM_JOINT_NAMES) -> None:
        self.model = mujoco.MjModel.from_xml_path(str(xml_path))
        self.data = mujoco.MjData(self.model)
        self.site_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, site)
        if self.site_id < 0:
            raise ValueError(f"site {site!r} not found in {xml_path}")
        self.joint_names = tuple(joint_names)
        if len(self.joint_names) != len(ARM_JOINT_NAMES):
            raise ValueError(f"expected {len(ARM_JOINT_NAMES)} arm joint names, got {list(self.joint_names)}")
        joint_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in self.joint_names]
        missing = [n for n, j in zip(self.joint_names, joint_ids) if j < 0]
        if missing:
            raise ValueError(f"joint(s) {missing} not found in {xml_path}")
        self.qpos_adr = np.array([self.model.jnt_qposadr[j] for j in joint_ids])
        self.dof_adr = np.array([self.model.jnt_dofadr[j] for j in joint_ids])
        self.lower = self.model.jnt_range[joint_ids, 0].copy()
        self.upper = self.model.jnt_range[joint_ids, 1].copy()
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    @staticmethod
    def _arm(q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape[0] not in (6, 7):
            raise ValueError(f"expected 6 arm joint positions (or 7 with the gripper), got shape {q.shape}")
        return q[:6]

    def _set(self, q: np.ndarray) -> None:
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool-centre point position (3,) and rotation matrix (3, 3) in the world frame."""
        self._set(self._arm(q))
        return self.data.site_xpos[self.site_id].copy(), self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, 6) Jacobian of the tool-centre point: rows linear (3) then angular (3), world frame."""
        self._set(self._arm(q))
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site_id)
        return np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]])

    def ik(
        self,
        target_pos: np.ndarray,
        target_yaw: float,
        q_init: np.ndarray,
        max_iters: int = 20,
        pos_tol: float = 5e-4,
        rot_tol: float = 5e-3,
        damping: float = 0.05,
    ) -> IKResult:
        """IK for a tool pointing straight down, rotated by ``target_yaw`` about the vertical."""
        return self.ik_pose(target_pos, tool_down_rotation(target_yaw), q_init, max_iters, pos_tol, rot_tol, damping)

    def ik_pose(
        self,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        q_init: np.ndarray,
        max_iters: int = 20,
        pos_tol: float = 5e-4,
        rot_tol: float = 5e-3,
        damping: float = 0.05,
        rot_weight: float = 0.3,
    ) -> IKResult:
        """Damped-least-squares IK for a full pose (position (3,), rotation matrix (3, 3)).

        Starts at ``q_init`` (warm start), clips every iterate to the joint ranges and returns
        the best iterate seen. ``rot_weight`` (m/rad) trades orientation against position error.
        """
        target_pos = np.asarray(target_pos, dtype=np.float64).reshape(3)
        target_rot = np.asarray(target_rot, dtype=np.float64).reshape(3, 3)
        if not (np.all(np.isfinite(target_pos)) and np.all(np.isfinite(target_rot))):
            raise ValueError(f"IK target must be finite, got pos={target_pos}, rot={target_rot.tolist()}")
        q = np.clip(self._arm(q_init).copy(), self.lower, self.upper)
        weights = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
        best = IKResult(q.copy(), np.inf, np.inf, False)
        best_cost = np.inf
        for _ in range(max(max_iters, 0) + 1):
            jac = self.jacobian(q)  # also leaves the site pose of q in self.data
            pos = self.data.site_xpos[self.site_id]
            rot = self.data.site_xmat[self.site_id].reshape(3, 3)
            err_p = target_pos - pos
            err_r = rotation_error(target_rot, rot)
            pos_err, rot_err = float(np.linalg.norm(err_p)), float(np.linalg.norm(err_r))
            cost = pos_err + rot_weight * rot_err
            if cost < best_cost:
                best_cost = cost
                best = IKResult(q.copy(), pos_err, rot_err, pos_err <= pos_tol and rot_err <= rot_tol)
            if best.converged:
                break
            err = np.concatenate([err_p, err_r]) * weights
            jw = jac * weights[:, None]
            dq = jw.T @ np.linalg.solve(jw @ jw.T + damping**2 * np.eye(6), err)
            q = np.clip(q + dq, self.lower, self.upper)
        return best
