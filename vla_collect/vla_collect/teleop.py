"""Jogging logic shared by the joystick and keyboard teleops (no ROS import).

A :class:`JogController` integrates operator inputs (joint velocities, or a Cartesian
end-effector velocity where the arm's kinematics are known) into absolute joint position
targets, the robot's action space.  It never runs ahead of the measured arm by more than
``max_lead`` and keeps every target inside the joint bounds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

JOINT = 'joint'
CARTESIAN = 'cartesian'


class Kinematics(Protocol):
    joint_names: Sequence[str]

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def ik_pose(self, target_pos: np.ndarray, target_rot: np.ndarray, q_init: np.ndarray) -> Any: ...


def load_kinematics(name: str) -> Kinematics | None:
    """The kinematics named in the teleop config: ``vla_sim`` (the simulated arm) or none."""
    if name in ('', 'none'):
        return None
    if name == 'vla_sim':
        from vla_sim.kinematics import ArmKinematics
        return ArmKinematics()
    raise ValueError(f"unknown kinematics {name!r}; expected 'vla_sim' or '' (joint jogging only)")


@dataclass
class JogInput:
    """One tick of operator input, each component in [-1, 1]."""

    enabled: bool = False  # deadman held (the keyboard is always enabled)
    joints: np.ndarray = field(default_factory=lambda: np.zeros(0))  # one per arm joint
    cartesian: np.ndarray = field(default_factory=lambda: np.zeros(4))  # x, y, z, yaw
    gripper: int = 0  # +1 open, -1 close, 0 unchanged


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class JogController:
    """Absolute joint targets from jog inputs.

    ``joint_names``/``lower``/``upper``/``max_velocity`` describe the whole action vector;
    ``gripper_joint`` (if any) is driven open/closed by ``JogInput.gripper``; the other joints
    are the arm, jogged in joint space or, with ``kinematics``, in Cartesian space.
    """

    def __init__(self, joint_names: Sequence[str], lower: Sequence[float], upper: Sequence[float],
                 max_velocity: Sequence[float], gripper_joint: str | None = 'gripper',
                 joint_speed: float = 0.6, linear_speed: float = 0.08, angular_speed: float = 0.6,
                 speed_scale: float = 0.5, speed_limits: tuple[float, float] = (0.1, 1.0),
                 max_lead: float = 0.3, kinematics: Kinematics | None = None) -> None:
        self.joint_names = [str(n) for n in joint_names]
        n = len(self.joint_names)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.max_velocity = np.asarray(max_velocity, dtype=np.float64)
        for what, arr in (('joint_lower', self.lower), ('joint_upper', self.upper),
                          ('max_velocity', self.max_velocity)):
            if arr.shape != (n,):
                raise ValueError(f'{what} has {arr.size} values for {n} joints {self.joint_names}')
        if np.any(self.lower >= self.upper):
            raise ValueError(f'joint_lower must be below joint_upper: {self.lower} vs {self.upper}')
        if gripper_joint and gripper_joint not in self.joint_names:
            raise ValueError(f'gripper_joint {gripper_joint!r} is not one of {self.joint_names}')
        self.gripper = self.joint_names.index(gripper_joint) if gripper_joint else None
        self.arm = [i for i in range(n) if i != self.gripper]
        self.joint_speed = float(joint_speed)
        self.linear_speed = float(linear_speed)
        self.angular_speed = float(angular_speed)
        self.speed_limits = (float(speed_limits[0]), float(speed_limits[1]))
        self.speed_scale = float(np.clip(speed_scale, *self.speed_limits))
        self.max_lead = float(max_lead)
        self.kinematics = kinematics
        self.ik_joints: list[int] = []
        if kinematics is not None:
            missing = [j for j in kinematics.joint_names if j not in self.joint_names]
            if missing:
                raise ValueError(f'the kinematics joints {missing} are not in {self.joint_names}')
            self.ik_joints = [self.joint_names.index(j) for j in kinematics.joint_names]
        self.mode = JOINT
        self.measured: np.ndarray | None = None
        self.target: np.ndarray | None = None
        self._was_enabled = False
        self._pose: tuple[np.ndarray, np.ndarray] | None = None  # Cartesian target
        self.ik_failures = 0

    # -- settings -------------------------------------------------------------------------
    def toggle_mode(self) -> str:
        """Switch joint <-> Cartesian jogging (Cartesian needs kinematics); returns the mode."""
        if self.kinematics is None:
            raise ValueError('Cartesian jogging needs the arm kinematics (parameter kinematics); '
                             'staying in joint mode')
        self.mode = CARTESIAN if self.mode == JOINT else JOINT
        self._pose = None
        return self.mode

    def scale_speed(self, factor: float) -> float:
        self.speed_scale = float(np.clip(self.speed_scale * factor, *self.speed_limits))
        return self.speed_scale

    # -- state ------------------------------------------------------------------------------
    def set_measured(self, q: Sequence[float]) -> None:
        self.measured = np.asarray(q, dtype=np.float64).copy()
        if self.target is None:
            self.target = np.clip(self.measured, self.lower, self.upper)

    def hold(self) -> np.ndarray | None:
        """Stop where the arm is: the target becomes the measured position."""
        if self.measured is None:
            return None
        self.target = np.clip(self.measured, self.lower, self.upper)
        self._pose = None
        return self.target.copy()

    # -- one tick -----------------------------------------------------------------------------
    def step(self, inp: JogInput, dt: float) -> np.ndarray | None:
        """The next target for ``dt`` seconds of input (None before any joint state)."""
        if self.measured is None or self.target is None:
            return None
        if not inp.enabled:
            if self._was_enabled:
                self.hold()
            self._was_enabled = False
            return self.target.copy()
        self._was_enabled = True
        target = self.target.copy()
        if self.mode == CARTESIAN and self.kinematics is not None:
            target = self._cartesian(target, np.asarray(inp.cartesian, dtype=np.float64), dt)
        else:
            self._pose = None
            rates = np.zeros(len(self.joint_names))
            jog = np.asarray(inp.joints, dtype=np.float64)
            for k, i in enumerate(self.arm[:jog.size]):
                rates[i] = np.clip(jog[k], -1.0, 1.0) * self.joint_speed * self.speed_scale
            rates = np.clip(rates, -self.max_velocity, self.max_velocity)
            target = target + rates * dt
        if self.gripper is not None and inp.gripper:
            g = self.gripper
            goal = self.upper[g] if inp.gripper > 0 else self.lower[g]
            step = self.max_velocity[g] * dt
            target[g] = target[g] + np.clip(goal - target[g], -step, step)
        lead = np.full(len(target), self.max_lead)
        if self.gripper is not None:
            lead[self.gripper] = self.upper[self.gripper] - self.lower[self.gripper]
        target = np.clip(target, self.measured - lead, self.measured + lead)
        self.target = np.clip(target, self.lower, self.upper)
        return self.target.copy()

    def _cartesian(self, target: np.ndarray, v: np.ndarray, dt: float) -> np.ndarray:
        kin = self.kinematics
        q = target[self.ik_joints]
        if self._pose is None:
            pos, rot = kin.fk(q)
            self._pose = (np.asarray(pos, dtype=np.float64), np.asarray(rot, dtype=np.float64))
        pos, rot = self._pose
        v = np.clip(np.pad(v, (0, max(0, 4 - v.size)))[:4], -1.0, 1.0) * self.speed_scale
        new_pos = pos + v[:3] * self.linear_speed * dt
        new_rot = rot_z(v[3] * self.angular_speed * dt) @ rot
        if not np.any(v):
            return target
        result = kin.ik_pose(new_pos, new_rot, q_init=q)
        if not result.converged and result.pos_error > 0.01:
            self.ik_failures += 1  # out of reach: stay at the last reachable pose
            return target
        rates = (np.asarray(result.q) - q) / max(dt, 1e-6)
        limit = self.max_velocity[self.ik_joints]
        if np.any(np.abs(rates) > limit):  # too fast for the joints: scale the step down
            scale = float(np.min(limit / np.maximum(np.abs(rates), 1e-9)))
            target[self.ik_joints] = q + (np.asarray(result.q) - q) * scale
            self._pose = None
            return target
        target[self.ik_joints] = result.q
        self._pose = (new_pos, new_rot)
        return target


@dataclass
class JoyMapping:
    """Which joystick axes and buttons do what (PS4 layout by default, see teleop.yaml)."""

    deadman_button: int = 4
    gripper_open_button: int = 5
    gripper_close_button: int = 7
    speed_up_button: int = 2
    speed_down_button: int = 0
    mode_button: int = 3
    joint_axes: Sequence[int] = (0, 1, 4, 3, 7, 6)
    joint_axis_signs: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    cartesian_axes: Sequence[int] = (1, 0, 4, 3)  # x, y, z, yaw
    cartesian_axis_signs: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
    deadzone: float = 0.1

    def __post_init__(self) -> None:
        if len(self.joint_axis_signs) != len(self.joint_axes):
            raise ValueError(f'joint_axis_signs has {len(self.joint_axis_signs)} values for '
                             f'{len(self.joint_axes)} joint_axes')
        if len(self.cartesian_axes) != 4 or len(self.cartesian_axis_signs) != 4:
            raise ValueError('cartesian_axes and cartesian_axis_signs need 4 values (x, y, z, yaw), '
                             f'got {list(self.cartesian_axes)} and {list(self.cartesian_axis_signs)}')
        if not 0 <= self.deadzone < 1:
            raise ValueError(f'deadzone must be in [0, 1), got {self.deadzone}')

    def _axis(self, axes: Sequence[float], index: int, sign: float) -> float:
        if index < 0 or index >= len(axes):
            return 0.0
        value = float(axes[index])
        if not np.isfinite(value) or abs(value) < self.deadzone:
            return 0.0
        return float(np.clip(value, -1.0, 1.0)) * sign

    @staticmethod
    def _button(buttons: Sequence[int], index: int) -> bool:
        return 0 <= index < len(buttons) and bool(buttons[index])

    def to_input(self, axes: Sequence[float], buttons: Sequence[int]) -> JogInput:
        gripper = (1 if self._button(buttons, self.gripper_open_button) else
                   -1 if self._button(buttons, self.gripper_close_button) else 0)
        return JogInput(
            enabled=self._button(buttons, self.deadman_button),
            joints=np.array([self._axis(axes, a, s) for a, s in zip(self.joint_axes, self.joint_axis_signs)]),
            cartesian=np.array([self._axis(axes, a, s)
                                for a, s in zip(self.cartesian_axes, self.cartesian_axis_signs)]),
            gripper=gripper)


# Terminal keys: joint mode (joint k + / -) and Cartesian mode (axis + / -).
JOINT_KEYS = {'q': (0, 1), 'a': (0, -1), 'w': (1, 1), 's': (1, -1), 'e': (2, 1), 'd': (2, -1),
              'r': (3, 1), 'f': (3, -1), 't': (4, 1), 'g': (4, -1), 'y': (5, 1), 'h': (5, -1)}
CARTESIAN_KEYS = {'w': (0, 1), 's': (0, -1), 'a': (1, 1), 'd': (1, -1), 'q': (2, 1), 'e': (2, -1),
                  'z': (3, 1), 'c': (3, -1)}


def key_input(key: str, mode: str, n_arm: int) -> JogInput | None:
    """The jog input of one key press (None for keys that do not jog)."""
    if key == 'o':
        return JogInput(enabled=True, joints=np.zeros(n_arm), gripper=1)
    if key == 'p':
        return JogInput(enabled=True, joints=np.zeros(n_arm), gripper=-1)
    table = CARTESIAN_KEYS if mode == CARTESIAN else JOINT_KEYS
    if key not in table:
        return None
    axis, direction = table[key]
    inp = JogInput(enabled=True, joints=np.zeros(n_arm))
    if mode == CARTESIAN:
        inp.cartesian = np.zeros(4)
        inp.cartesian[axis] = direction
    elif axis < n_arm:
        inp.joints[axis] = direction
    else:
        return None
    return inp
