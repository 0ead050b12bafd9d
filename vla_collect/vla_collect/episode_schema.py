"""The HDF5 episode schema: layout, file names, directory listings and validation.

One file per episode (layout in DESIGN.md, readable with plain h5py)::

    /observations/images             (T, H, W, 3) uint8   one chunk per frame, gzip
    /observations/images_<camera>    (T, H', W', 3) uint8 more cameras, named in attrs['cameras']
    /observations/joint_positions    (T, N) float32
    /observations/joint_velocities   (T, N) float32
    /actions                         (T, A) float32
    /timestamps                      (T,) float64 seconds

A final name ``episode_NNNNNN.hdf5`` always holds a complete episode; ``<final>.tmp`` is one
being written or an interrupted recording.  The writer is :mod:`vla_collect.episode_writer`,
the reader :mod:`vla_collect.episode_reader`, salvage :mod:`vla_collect.episode_recovery`;
:mod:`vla_collect.episode_io` gathers their public names.  No ROS import here.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
TMP_SUFFIX = '.tmp'
EPISODE_PATTERN = re.compile(r'^episode_(\d+)\.hdf5$')
_ANY_EPISODE_PATTERN = re.compile(r'^episode_(\d+)\.hdf5(?:\.[A-Za-z0-9_.]+)?$')

IMAGES = 'observations/images'
JOINT_POSITIONS = 'observations/joint_positions'
JOINT_VELOCITIES = 'observations/joint_velocities'
ACTIONS = 'actions'
TIMESTAMPS = 'timestamps'
REQUIRED_ATTRS = ('language_command', 'success', 'episode_id', 'duration', 'fps', 'joint_names',
                  'action_names', 'schema_version', 'robot', 'created')


class EpisodeFormatError(ValueError):
    """A file that is not a readable episode of this schema; the message names the file and why."""


class EpisodeWriteError(OSError):
    """Writing an episode failed (disk full, unwritable directory, ...); the episode was aborted."""


def camera_dataset(camera: str) -> str:
    """Dataset path of an extra camera's images."""
    return f'{IMAGES}_{camera}'


def episode_number(path: str | Path) -> int | None:
    """The number in ``episode_000012.hdf5`` (also of its ``.tmp``), or None."""
    match = _ANY_EPISODE_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def temp_path_for(path: str | Path) -> Path:
    """Where an episode is written before it gets its final name."""
    path = Path(path)
    return path.with_name(path.name + TMP_SUFFIX)


# -- directories ----------------------------------------------------------------------------------
def list_episodes(directory: str | Path) -> list[Path]:
    """The final episode files ``episode_*.hdf5`` of a directory, in episode-number order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir()
             if (m := EPISODE_PATTERN.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def list_interrupted(directory: str | Path) -> list[Path]:
    """Temporary files of interrupted recordings (``episode_*.hdf5.tmp``)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.endswith(TMP_SUFFIX) and episode_number(p) is not None)


def next_episode_path(directory: str | Path) -> Path:
    """``episode_NNNNNN.hdf5`` after the highest number in use (final or temporary file)."""
    directory = Path(directory)
    numbers = [n for p in (directory.iterdir() if directory.is_dir() else [])
               if (n := episode_number(p)) is not None]
    return directory / f'episode_{max(numbers, default=-1) + 1:06d}.hdf5'


# -- validation ---------------------------------------------------------------------------------
def attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes -> str, arrays -> lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [attr_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_h5(path: Path, swmr: bool = False) -> h5py.File:
    """Open an episode file read-only; a temporary file only with ``swmr`` (for recovery)."""
    if not path.exists():
        raise FileNotFoundError(f'{path}: no such episode file')
    if path.name.endswith(TMP_SUFFIX) and not swmr:
        raise EpisodeFormatError(f'{path}: an interrupted recording (temporary file), not an '
                                 f'episode; salvage it with `vla dataset recover {path}`')
    try:
        return h5py.File(path, 'r', swmr=swmr)
    except OSError as exc:
        size = path.stat().st_size
        raise EpisodeFormatError(f'{path}: not a readable HDF5 file ({size} bytes; truncated or '
                                 f'corrupt?): {exc}') from exc


def schema_problems(f: h5py.File) -> list[str]:
    """Structural problems: missing pieces, wrong types, inconsistent dimensions."""
    problems = []
    version = f.attrs.get('schema_version')
    if version is None:
        return ['no schema_version attribute: not an episode written by vla_collect']
    if int(version) > SCHEMA_VERSION:
        return [f'schema_version {int(version)} is newer than this reader ({SCHEMA_VERSION}); '
                'update vla_collect']
    missing_attrs = [a for a in REQUIRED_ATTRS if a not in f.attrs]
    if missing_attrs:
        problems.append(f'missing attribute(s) {missing_attrs}')
    missing = [d for d in (IMAGES, JOINT_POSITIONS, JOINT_VELOCITIES, ACTIONS, TIMESTAMPS)
               if not isinstance(f.get(d), h5py.Dataset)]
    if missing:
        problems.append(f'missing dataset(s) {["/" + d for d in missing]}')
        return problems
    lengths = {}
    images = f[IMAGES]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        problems.append(f'/{IMAGES} must be (T, H, W, 3) uint8, got {images.dtype} {images.shape}')
    lengths[IMAGES] = images.shape[0] if images.ndim else 0
    cameras = attr_value(f.attrs.get('cameras', []))
    for camera in cameras or []:
        ds = f.get(camera_dataset(camera))
        if not isinstance(ds, h5py.Dataset):
            problems.append(f'camera {camera!r} is listed in attrs["cameras"] but '
                            f'/{camera_dataset(camera)} is missing')
        elif ds.ndim != 4 or ds.shape[-1] != 3 or ds.dtype != np.uint8:
            problems.append(f'/{camera_dataset(camera)} must be (T, H, W, 3) uint8, '
                            f'got {ds.dtype} {ds.shape}')
        else:
            lengths[camera_dataset(camera)] = ds.shape[0]
    joint_names = attr_value(f.attrs.get('joint_names', []))
    action_names = attr_value(f.attrs.get('action_names', []))
    for name, width, what in ((JOINT_POSITIONS, len(joint_names), 'joint_names'),
                              (JOINT_VELOCITIES, len(joint_names), 'joint_names'),
                              (ACTIONS, len(action_names), 'action_names')):
        ds = f[name]
        if ds.ndim != 2:
            problems.append(f'/{name} must be 2-D (T, {what}), got shape {ds.shape}')
            continue
        if ds.shape[1] != width:
            problems.append(f'/{name} has {ds.shape[1]} columns but attrs["{what}"] names {width}')
        lengths[name] = ds.shape[0]
    ts = f[TIMESTAMPS]
    if ts.ndim != 1:
        problems.append(f'/{TIMESTAMPS} must be 1-D, got shape {ts.shape}')
    else:
        lengths[TIMESTAMPS] = ts.shape[0]
    if len(set(lengths.values())) > 1:
        problems.append('datasets differ in length: ' +
                        ', '.join(f'/{k} {v}' for k, v in lengths.items()))
    steps = lengths.get(TIMESTAMPS, 0)
    if 'duration' in f.attrs and int(f.attrs['duration']) != steps:
        problems.append(f'attrs["duration"] is {int(f.attrs["duration"])} but there are {steps} steps')
    if steps == 0:
        problems.append('the episode has no steps')
    if 'fps' in f.attrs:
        fps = float(f.attrs['fps'])
        if not (math.isfinite(fps) and fps > 0):
            problems.append(f'attrs["fps"] must be > 0, got {fps}')
    return problems


def first_bad_row(data: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first non-finite value, or None."""
    bad = ~np.isfinite(data)
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    return int(row), int(col)


def validate_episode(path: str | Path, check_images: str = 'all') -> list[str]:
    """Problems with an episode file ([] when valid), each a sentence a person can act on.

    Checks the schema (datasets, attributes, version), dimensions against the joint/action
    names, equal lengths, non-finite values (with the step and column), strictly increasing
    timestamps and that image chunks decompress.  ``check_images``: ``'all'`` reads every
    frame, ``'last'`` only the last one (catches a truncated file cheaply), ``'none'`` skips.
    """
    if check_images not in ('all', 'last', 'none'):
        raise ValueError(f"check_images must be 'all', 'last' or 'none', got {check_images!r}")
    path = Path(path)
    try:
        f = open_h5(path)
    except (EpisodeFormatError, FileNotFoundError) as exc:
        return [str(exc).removeprefix(f'{path}: ')]
    try:
        problems = schema_problems(f)
        if any(p.startswith(('no schema_version', 'schema_version', 'missing dataset'))
               for p in problems):
            return problems
        joint_names = attr_value(f.attrs.get('joint_names', []))
        action_names = attr_value(f.attrs.get('action_names', []))
        for name, columns in ((JOINT_POSITIONS, joint_names), (JOINT_VELOCITIES, joint_names),
                              (ACTIONS, action_names)):
            ds = f[name]
            if ds.ndim != 2:
                continue
            bad = first_bad_row(ds[()])
            if bad is not None:
                row, col = bad
                column = columns[col] if col < len(columns) else f'column {col}'
                problems.append(f'non-finite value (NaN/inf) in /{name} at step {row} ({column})')
        ts = f[TIMESTAMPS]
        if ts.ndim == 1 and ts.shape[0]:
            t = ts[()]
            if not np.all(np.isfinite(t)):
                problems.append(f'non-finite timestamp at step {int(np.flatnonzero(~np.isfinite(t))[0])}')
            else:
                back = np.flatnonzero(np.diff(t) <= 0)
                if back.size:
                    k = int(back[0]) + 1
                    problems.append(f'timestamps not strictly increasing at step {k} '
                                    f'({t[k - 1]:.6f} then {t[k]:.6f})')
        if check_images != 'none':
            for name in [IMAGES] + [camera_dataset(c) for c in attr_value(f.attrs.get('cameras', []))]:
                ds = f.get(name)
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 4 or ds.shape[0] == 0:
                    continue
                rows = range(ds.shape[0]) if check_images == 'all' else [ds.shape[0] - 1]
                for i in rows:
                    try:
                        ds[i]
                    except (OSError, RuntimeError, ValueError) as exc:
                        problems.append(f'/{name} frame {i} cannot be read (truncated or corrupt '
                                        f'file): {exc}')
                        break
        return problems
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        return [f'unreadable ({type(exc).__name__}: {exc}); truncated or corrupt file?']
    finally:
        f.close()
