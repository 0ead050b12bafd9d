"""Reading HDF5 episodes: a lazy reader, and the directory loaders training uses.

:func:`open_episode` checks the schema (:mod:`vla_collect.episode_schema`) and returns an
:class:`Episode` whose arrays are h5py datasets, read on demand.  No ROS import here.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py

from vla_collect.episode_schema import (ACTIONS, IMAGES, JOINT_POSITIONS, JOINT_VELOCITIES,
                                        TIMESTAMPS, EpisodeFormatError, attr_value, camera_dataset,
                                        list_episodes, list_interrupted, open_h5, schema_problems,
                                        validate_episode)
from vla_collect.episode_writer import ACTIONS_EE

#: which recorded actions a reader calls ``actions``: the joint targets, or the end-effector command
ACTION_SPACES = ('joint', 'ee_delta')


class Episode:
    """A lazy reader over one episode file (a context manager; the datasets are h5py datasets)."""

    def __init__(self, path: str | Path, file: h5py.File, action_space: str = 'joint') -> None:
        self.path = Path(path)
        self.file = file
        self.attrs: dict[str, Any] = {k: attr_value(v) for k, v in file.attrs.items()}
        self.images: h5py.Dataset = file[IMAGES]
        self.joint_positions: h5py.Dataset = file[JOINT_POSITIONS]
        self.joint_velocities: h5py.Dataset = file[JOINT_VELOCITIES]
        if action_space not in ACTION_SPACES:
            raise ValueError(f'action_space must be one of {ACTION_SPACES}, got {action_space!r}')
        self.action_space = action_space
        if action_space == 'ee_delta' and ACTIONS_EE not in file:
            raise EpisodeFormatError(f'{self.path} has no /{ACTIONS_EE} (end-effector actions): record with '
                                     '`vla collect --action-mode ee_delta`, or train on its joint actions')
        # 'joint': /actions (the joint targets the robot got); 'ee_delta': /actions_ee, the
        # end-effector command they came from
        self.actions: h5py.Dataset = file[ACTIONS if action_space == 'joint' else ACTIONS_EE]
        self.timestamps: h5py.Dataset = file[TIMESTAMPS]
        self.cameras: list[str] = list(self.attrs.get('cameras') or [])

    @property
    def language_command(self) -> str:
        return str(self.attrs['language_command'])

    @property
    def success(self) -> bool:
        return bool(self.attrs['success'])

    @property
    def fps(self) -> float:
        return float(self.attrs['fps'])

    @property
    def episode_id(self) -> int:
        return int(self.attrs['episode_id'])

    @property
    def joint_names(self) -> list[str]:
        return list(self.attrs['joint_names'])

    @property
    def action_names(self) -> list[str]:
        """Names of :attr:`actions` (of ``/actions_ee`` when opened with ``action_space='ee_delta'``)."""
        return list(self.attrs['action_names' if self.action_space == 'joint' else 'action_ee_names'])

    def camera_images(self, camera: str) -> h5py.Dataset:
        """Images of an extra camera (``/observations/images_<camera>``)."""
        if camera not in self.cameras:
            raise KeyError(f'{self.path} has no camera {camera!r}; it has {self.cameras}')
        return self.file[camera_dataset(camera)]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f'Episode({str(self.path)!r}, steps={len(self)}, '
                f'command={self.language_command!r}, success={self.success})')


def open_episode(path: str | Path, action_space: str = 'joint') -> Episode:
    """Open an episode for lazy reading; raises :class:`EpisodeFormatError` naming the file and
    the fault for corrupt, truncated or non-schema files (FileNotFoundError when missing).
    ``action_space='ee_delta'`` reads ``/actions_ee`` as the episode's actions."""
    path = Path(path)
    f = open_h5(path)
    try:
        problems = schema_problems(f)
        if problems:
            raise EpisodeFormatError(f'{path}: ' + '; '.join(problems))
        return Episode(path, f, action_space)
    except EpisodeFormatError:
        f.close()
        raise
    except (OSError, KeyError, TypeError, ValueError) as exc:
        f.close()
        raise EpisodeFormatError(f'{path}: unreadable episode ({exc})') from exc


def load_valid_episodes(directory: str | Path, check_images: str = 'last'
                        ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(valid episode files, [(skipped file, reason)]): readers skip broken files with a warning
    instead of failing; interrupted recordings are listed as skipped too."""
    valid: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in list_episodes(directory):
        problems = validate_episode(path, check_images=check_images)
        if problems:
            skipped.append((path, '; '.join(problems)))
        else:
            valid.append(path)
    for path in list_interrupted(directory):
        skipped.append((path, 'interrupted recording (temporary file); salvage it with '
                              f'`vla dataset recover {path}`'))
    for path, reason in skipped:
        warnings.warn(f'skipping {path}: {reason}', RuntimeWarning, stacklevel=2)
    return valid, skipped


def iter_episodes(paths: Iterable[str | Path]) -> Iterable[Episode]:
    """Open each episode in turn (closing the previous one)."""
    for path in paths:
        with open_episode(path) as episode:
            yield episode
