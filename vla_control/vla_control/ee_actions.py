"""End-effector (Cartesian delta) actions turned into joint targets, without ROS.

A checkpoint trained with ``vla train --action-space ee_delta`` outputs :data:`EE_ACTION_NAMES`
per tick: a tool translation (3, m) and rotation vector (3, rad, world frame) applied to the
*commanded* tool pose, and the absolute gripper opening (m).  :class:`EEActionConverter` keeps
that commanded pose and solves IK for the robot's joint targets with
``vla_sim.ee_control.EEDeltaController`` (the simulator's and the scripted expert's conversion, so
a policy is executed as it was trained) on ``vla_sim.kinematics.ArmKinematics``, a MuJoCo model
of the arm: by default the simulated arm's, or a lab's robot MJCF and tool site.  Everything after
it (the controller's guard, the command gate) sees joint targets only.

The differences from ``SimEnv(action_mode="ee_delta")`` are on purpose: the commanded pose is
anchored at the *measured* joint state whenever the controller starts acting (``anchor``), and
IK that does not converge is refused (the controller holds, saying why) rather than commanding
the nearest pose the solver found.  ``vla_sim`` (and with it ``mujoco``) is imported only when an
end-effector checkpoint is loaded: a joint-space deployment never imports it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: the action names of an end-effector checkpoint: ``vla_sim.EE_ACTION_NAMES`` (a test checks
#: they agree), repeated here so that recognising one does not import vla_sim and mujoco
EE_ACTION_NAMES: tuple[str, ...] = ('ee_dx', 'ee_dy', 'ee_dz', 'ee_rx', 'ee_ry', 'ee_rz', 'gripper')
DEFAULT_SITE = 'tcp'  # the simulated arm's tool-centre point (vla_sim.kinematics.TCP_SITE)
IK_ITERATIONS = 10  # per tick, warm-started (EEDeltaController.step)


def is_ee_checkpoint(action_names: Sequence[str]) -> bool:
    """Whether a checkpoint with ``action_names`` outputs end-effector deltas."""
    return tuple(action_names) == EE_ACTION_NAMES


def load_kinematics(joint_names: Sequence[str], model: str = '', site: str = DEFAULT_SITE) -> Any:
    """``vla_sim.kinematics.ArmKinematics`` of MJCF ``model`` ('' = the simulated arm's) at tool
    ``site`` for the robot's ``joint_names``: six arm joints the model must have, then the gripper
    (the action's last number, passed through).  Raises ValueError saying what was expected."""
    from vla_sim.kinematics import ARM_JOINT_NAMES, SCENE_XML, ArmKinematics
    names = list(joint_names)
    if len(names) != len(ARM_JOINT_NAMES) + 1:
        raise ValueError(f'an end-effector checkpoint needs {len(ARM_JOINT_NAMES)} arm joints then the '
                         f'gripper, in joint_names; the robot has {names}')
    path = Path(model).expanduser() if model else SCENE_XML
    if not path.is_file():
        raise ValueError(f'kinematics_model {str(path)!r} is not a file: give the MJCF of the robot '
                         '(\'\' = the simulated arm\'s)')
    try:
        return ArmKinematics(path, site or DEFAULT_SITE, joint_names=names[:-1])
    except ValueError as exc:  # a joint or the site missing: say which parameters to fix
        raise ValueError(f'kinematics_model {str(path)!r} does not fit the robot: {exc} (expected '
                         f'its arm joints {names[:-1]} (joint_names but the gripper) and the tool '
                         f'site {site!r} (kinematics_site))') from exc


class EEActionConverter:
    """End-effector actions in, the robot's joint targets out (arm joints by IK, gripper as
    given), one per tick, from a commanded tool pose anchored at a measured joint state.

    :meth:`anchor` when the controller starts acting (start, after any hold, a new command);
    :meth:`step` per action; :meth:`preview` for the points of a plan ahead, on a copy.
    """

    def __init__(self, kinematics: Any) -> None:
        from vla_sim.ee_control import EEDeltaController
        self.controller = EEDeltaController(kinematics)
        self.n_arm = len(kinematics.joint_names)
        self.action_names = EE_ACTION_NAMES  # what the policy's actions are (the recording's)
        self.anchored = False
        self.ik_failures = 0  # actions refused because IK did not converge

    @classmethod
    def for_robot(cls, joint_names: Sequence[str], model: str = '',
                  site: str = DEFAULT_SITE) -> EEActionConverter:
        """A converter on :func:`load_kinematics` (raises ValueError when it does not fit)."""
        return cls(load_kinematics(joint_names, model, site))

    def invalidate(self) -> None:
        """The commanded pose is stale (a hold, a new command): :meth:`anchor` before acting."""
        self.anchored = False

    def anchor(self, q: np.ndarray) -> None:
        """Command the tool pose of the measured joint positions ``q`` (arm joints, gripper)."""
        self.controller.reset(np.asarray(q, dtype=np.float64)[: self.n_arm])
        self.anchored = True

    def _state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.controller
        return c.pos.copy(), c.rot.copy(), c.q.copy()

    def _restore(self, state: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        c = self.controller
        c.pos, c.rot, c.q = (x.copy() for x in state)

    def _convert(self, action: np.ndarray) -> tuple[np.ndarray | None, str, bool]:
        """(targets or None, why not, whether IK was what failed)."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (len(EE_ACTION_NAMES),):
            return None, (f'model output has {action.size} values, an end-effector action has '
                          f'{len(EE_ACTION_NAMES)} {list(EE_ACTION_NAMES)}'), False
        if not np.all(np.isfinite(action)):
            bad = [EE_ACTION_NAMES[j] for j in np.flatnonzero(~np.isfinite(action))]
            return None, f'model output is not finite for {bad}: {action.tolist()}', False
        before = self._state()
        targets, _clipped = self.controller.step(action)
        ik = self.controller.last_ik
        if not ik.converged:
            self._restore(before)  # the commanded pose stays where it was
            return None, (f'IK did not converge: the commanded tool pose is out of reach ('
                          f'{ik.pos_error * 1e3:.1f} mm, {ik.rot_error:.3f} rad off after '
                          f'{IK_ITERATIONS} iterations); not commanding it'), True
        return targets, '', False

    def step(self, action: np.ndarray) -> tuple[np.ndarray | None, str]:
        """(joint targets (N,), '') for end-effector ``action`` (7,), committed to the commanded
        pose; or (None, why) when it is malformed or IK does not converge (pose unchanged)."""
        if not self.anchored:
            raise RuntimeError('EEActionConverter.step before anchor(): the commanded pose is '
                               'not known')
        targets, problem, ik_failed = self._convert(action)
        self.ik_failures += int(ik_failed)
        return targets, problem

    def preview(self, actions: np.ndarray) -> np.ndarray:
        """The joint targets (P, N) of ``actions`` (K, 7) integrated forward from the commanded
        pose, up to the first that is malformed or does not converge; the commanded pose is left
        as it was (the plan ahead is not executed yet)."""
        before = self._state()
        points = []
        try:
            for action in np.asarray(actions, dtype=np.float64).reshape(len(actions), -1):
                targets, _problem, _ik_failed = self._convert(action)
                if targets is None:
                    break
                points.append(targets)
        finally:
            self._restore(before)
        n = self.n_arm + 1
        return np.stack(points) if points else np.zeros((0, n))
