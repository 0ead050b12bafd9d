"""The robot description: joint names (in action order), command bounds and speed limits, read
once from ``robot.yaml``.

``robot.yaml`` (``vla_common/config/robot.yaml``, installed to ``share/vla_common/config``) is
the file every node is started with; it is a ROS parameter file whose wildcard section (``/**``)
sets ``joint_names``, ``joint_lower``, ``joint_upper`` and ``max_velocity``.  The nodes take
the same values as their parameter defaults from here (:func:`robot_defaults`), so a node
started without the file (``ros2 run`` alone) gets the robot's own limits, never a silent
+/-1e9 or a second copy of the numbers.  Parameter files and ``-p`` overrides still win.

Which file (:func:`robot_yaml`): ``$VLA_ROBOT_YAML`` when set (your own arm: the launch files
and the ``vla`` runner then start every node with it too), else the installed ``vla_common``
share directory's, else the source tree's.  No rclpy import here.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from vla_common.config_files import config_dirs

#: environment variable naming another robot description file
ROBOT_YAML_ENV = 'VLA_ROBOT_YAML'

#: the per-joint values a robot description holds, by their node parameter names
PER_JOINT = ('joint_lower', 'joint_upper', 'max_velocity')

#: the file name of the robot description in vla_common's config directory
ROBOT_YAML = 'robot.yaml'


class RobotDescriptionError(ValueError):
    """A robot description that cannot be used; the message names the file and the fault."""


class RobotDescriptionNotFound(RobotDescriptionError):
    """No robot description file where :func:`default_robot` looks; the message says where."""


@dataclass(frozen=True)
class RobotDescription:
    """One robot: its joints in action order and, per joint, the command bounds (rad, gripper m)
    and the fastest commanded speed (rad/s, gripper m/s)."""

    joint_names: tuple[str, ...]
    joint_lower: tuple[float, ...]
    joint_upper: tuple[float, ...]
    max_velocity: tuple[float, ...]
    source: str = ''  # the file it was read from ('' when built in code)

    def __post_init__(self) -> None:
        where = f'{self.source}: ' if self.source else ''
        names = tuple(str(n) for n in self.joint_names)
        if not names:
            raise RobotDescriptionError(f'{where}joint_names is empty')
        if len(set(names)) != len(names):
            raise RobotDescriptionError(f'{where}joint_names has repeated names: {list(names)}')
        object.__setattr__(self, 'joint_names', names)
        for key in PER_JOINT:
            values = getattr(self, key)
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise RobotDescriptionError(f'{where}{key} must be a list of numbers, got {values!r}')
            try:
                values = tuple(float(v) for v in values)
            except (TypeError, ValueError):
                raise RobotDescriptionError(f'{where}{key} must be a list of numbers, '
                                            f'got {list(values)!r}') from None
            if len(values) != len(names):
                raise RobotDescriptionError(f'{where}{key} has {len(values)} values for the '
                                            f'{len(names)} joints {list(names)}')
            if not all(math.isfinite(v) for v in values):
                raise RobotDescriptionError(f'{where}{key} must be finite, got {list(values)}')
            object.__setattr__(self, key, values)
        bad = [n for n, lo, hi in zip(names, self.joint_lower, self.joint_upper) if lo >= hi]
        if bad:
            raise RobotDescriptionError(f'{where}joint_lower must be below joint_upper for {bad}')
        slow = [n for n, v in zip(names, self.max_velocity) if v <= 0]
        if slow:
            raise RobotDescriptionError(f'{where}max_velocity must be > 0 for {slow}')

    @property
    def n(self) -> int:
        return len(self.joint_names)

    def per_joint(self, key: str, joint_names: Sequence[str] | None = None) -> list[float] | None:
        """The values of ``key`` (one of :data:`PER_JOINT`) for ``joint_names`` (default: all
        joints, in order), or None when a name is not one of this robot's joints (no default:
        the node must be given the value)."""
        if key not in PER_JOINT:
            raise KeyError(f'{key!r} is not a per-joint value; expected one of {PER_JOINT}')
        values = dict(zip(self.joint_names, getattr(self, key)))
        names = self.joint_names if joint_names is None else [str(n) for n in joint_names]
        if any(n not in values for n in names):
            return None
        return [values[n] for n in names]

    def parameters(self) -> dict[str, list]:
        """``joint_names`` and the per-joint values, as node parameters."""
        return {'joint_names': list(self.joint_names),
                **{key: list(getattr(self, key)) for key in PER_JOINT}}


def load_robot(path: str | os.PathLike) -> RobotDescription:
    """The description in a ROS parameter file (the ``/**`` section's ``ros__parameters``, or
    the first section that sets ``joint_names``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RobotDescriptionError(f'{path}: cannot read the robot description: {exc}') from None
    sections = data if isinstance(data, dict) else {}
    candidates = [sections.get('/**')] + [v for k, v in sections.items() if k != '/**']
    params = None
    for section in candidates:
        found = section.get('ros__parameters') if isinstance(section, dict) else None
        if isinstance(found, dict) and 'joint_names' in found:
            params = found
            break
    if params is None:
        raise RobotDescriptionError(f'{path}: no ros__parameters section sets joint_names (a robot '
                                    'description sets joint_names, joint_lower, joint_upper and '
                                    'max_velocity under /**)')
    missing = [k for k in ('joint_names', *PER_JOINT) if k not in params]
    if missing:
        raise RobotDescriptionError(f'{path}: the robot description lacks {missing}')
    return RobotDescription(joint_names=tuple(params['joint_names']),
                            **{key: params[key] for key in PER_JOINT}, source=str(path))


def robot_yaml_candidates() -> list[Path]:
    """Where :func:`robot_yaml` looks, in order."""
    if os.environ.get(ROBOT_YAML_ENV):
        return [Path(os.environ[ROBOT_YAML_ENV])]
    return [directory / ROBOT_YAML for directory in config_dirs('vla_common')]


def _first_file(candidates: tuple[Path, ...]) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise RobotDescriptionNotFound(
        f'no robot description found (looked in {[str(p) for p in candidates]}); install '
        f'vla_common or set {ROBOT_YAML_ENV} to your robot.yaml')


def robot_yaml() -> Path:
    """The robot description file: the one the nodes are started with and default to."""
    return _first_file(tuple(robot_yaml_candidates()))


@functools.lru_cache(maxsize=None)
def _load_default(candidates: tuple[Path, ...]) -> RobotDescription:
    return load_robot(_first_file(candidates))


def default_robot() -> RobotDescription:
    """The robot every node defaults to, read once per file (see the module docstring)."""
    return _load_default(tuple(robot_yaml_candidates()))


def robot_defaults(joint_names: Sequence[str] | None = None) -> dict[str, list | None]:
    """The node parameter defaults of the robot: ``joint_names`` and, for ``joint_names`` (a
    node's own list; default: the robot's), ``joint_lower``, ``joint_upper`` and
    ``max_velocity`` (None for a list that names a joint the robot does not have: then the node
    declares the parameter without a default and must be given it)."""
    robot = default_robot()
    return {'joint_names': list(robot.joint_names),
            **{key: robot.per_joint(key, joint_names) for key in PER_JOINT}}
