"""HDF5 demonstration episodes: a streaming writer, a lazy reader, a validator and recovery.

One file per episode (layout in DESIGN.md, readable with plain h5py)::

    /observations/images             (T, H, W, 3) uint8   one chunk per frame, gzip
    /observations/images_<camera>    (T, H', W', 3) uint8 more cameras, named in attrs['cameras']
    /observations/joint_positions    (T, N) float32
    /observations/joint_velocities   (T, N) float32
    /actions                         (T, A) float32
    /timestamps                      (T,) float64 seconds

Writing is streamed step by step (nothing is held in memory) into ``<final>.tmp`` in HDF5's
single-writer/multiple-reader (SWMR) mode, which keeps the file consistent on disk at every
flush; a flush every ``flush_every`` steps (one second at 30 Hz) bounds what a crash loses.
:meth:`EpisodeWriter.close` writes the final attributes and only then gives the file its final
name, so a final name always holds a complete episode.  An interrupted ``.tmp`` file is
salvaged with :func:`recover_episode` (or ``vla dataset recover``).

No ROS import here: the recorder node, the dataset tools and training all use this module.
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import math
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vla_common.files import fsync_dir

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
# HDF5 file-format bounds: SWMR needs the 1.10 format; capping it there keeps the files
# readable by every h5py built against HDF5 >= 1.10 (2016), not only the newest.
_LIBVER = ('v110', 'v110')
# gzip (readable by any HDF5 reader) at level 2: on 224x224 renders 0.53 ms and 6.8 KiB a frame
# against 1.21 ms and 5.6 KiB at level 4 (the recorder compresses two frames a tick)
_IMAGE_COMPRESSION = {'compression': 'gzip', 'compression_opts': 2}
_ROW_CHUNK = 256  # time steps per chunk of the small per-step datasets
#: free space below which a recording stops cleanly (HDF5 does not recover from a failed write)
DEFAULT_MIN_FREE_BYTES = 64 * 2**20

log = logging.getLogger(__name__)


class EpisodeFormatError(ValueError):
    """A file that is not a readable episode of this schema; the message names the file and why."""


class EpisodeWriteError(OSError):
    """Writing an episode failed (disk full, unwritable directory, ...); the episode was aborted."""


def camera_dataset(camera: str) -> str:
    """Dataset path of an extra camera's images."""
    return f'{IMAGES}_{camera}'


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec='seconds')


def _names(value: Any, what: str) -> list[str]:
    names = [str(n) for n in (value or [])]
    if not names:
        raise ValueError(f'{what} must name at least one dimension, got {value!r}')
    if len(set(names)) != len(names):
        raise ValueError(f'{what} has repeated names: {names}')
    return names


def _shape(value: Sequence[int], what: str) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in value)
    if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
        raise ValueError(f'{what} must be (height, width, 3) for RGB images, got {tuple(value)!r}')
    return shape  # type: ignore[return-value]


def episode_number(path: str | Path) -> int | None:
    """The number in ``episode_000012.hdf5`` (also of its ``.tmp``), or None."""
    match = _ANY_EPISODE_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def temp_path_for(path: str | Path) -> Path:
    """Where an episode is written before it gets its final name."""
    path = Path(path)
    return path.with_name(path.name + TMP_SUFFIX)


def _link_no_overwrite(src: Path, dst: Path) -> None:
    """Give ``src`` the name ``dst`` without ever replacing an existing ``dst``."""
    try:
        os.link(src, dst)  # atomic, fails when dst exists
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links
        if dst.exists():
            raise FileExistsError(f'{dst} already exists')
        os.rename(src, dst)
        return
    os.unlink(src)


# -- writing ------------------------------------------------------------------------------------
class EpisodeWriter:
    """Streams one episode to ``<path>.tmp`` and renames it to ``path`` on :meth:`close`.

    Any number of joints and actions and any image size: nothing here assumes the simulated
    arm.  ``cameras`` names extra cameras (stored as ``/observations/images_<camera>``) and
    ``camera_shapes`` their (H, W, 3) shapes (default: ``image_shape``).  Use as a context
    manager: leaving the block with an exception aborts (deletes) the episode, leaving it
    without :meth:`close` keeps the temporary file for recovery.
    """

    def __init__(self, path: str | Path, *, joint_names: Sequence[str], action_names: Sequence[str],
                 image_shape: Sequence[int] = (224, 224, 3), fps: float = 30.0,
                 language_command: str = '', robot: str = 'vla_sim', episode_id: int | None = None,
                 cameras: Sequence[str] = (), camera_shapes: Mapping[str, Sequence[int]] | None = None,
                 flush_every: int = 30, temp_path: str | Path | None = None,
                 created: str | None = None,
                 min_free_bytes: int = DEFAULT_MIN_FREE_BYTES) -> None:
        self.path = Path(path)
        self.temp_path = Path(temp_path) if temp_path is not None else temp_path_for(self.path)
        self.joint_names = _names(joint_names, 'joint_names')
        self.action_names = _names(action_names, 'action_names')
        self.image_shape = _shape(image_shape, 'image_shape')
        self.cameras = [str(c) for c in cameras]
        if len(set(self.cameras)) != len(self.cameras) or any(
                not re.fullmatch(r'[A-Za-z0-9_]+', c) for c in self.cameras):
            raise ValueError(f'cameras must be distinct names of letters, digits and _, '
                             f'got {self.cameras}')
        shapes = dict(camera_shapes or {})
        unknown = sorted(set(shapes) - set(self.cameras))
        if unknown:
            raise ValueError(f'camera_shapes given for cameras {unknown} not in cameras {self.cameras}')
        self.camera_shapes = {c: _shape(shapes.get(c, self.image_shape), f'camera_shapes[{c!r}]')
                              for c in self.cameras}
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f'fps must be a positive number, got {fps!r}')
        if int(flush_every) < 1:
            raise ValueError(f'flush_every must be >= 1 step, got {flush_every!r}')
        self.fps = float(fps)
        self.flush_every = int(flush_every)
        self.language_command = str(language_command)
        if episode_id is None:
            episode_id = episode_number(self.path)
        self.episode_id = -1 if episode_id is None else int(episode_id)
        self.robot = str(robot)
        self.min_free_bytes = int(min_free_bytes)
        self.length = 0
        self._last_timestamp = -math.inf
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._frame_datasets: set[str] = set()  # image datasets written as precompressed chunks
        self._closed = False

        if self.path.exists():
            raise FileExistsError(f'{self.path} already exists; episodes are never overwritten '
                                  '(use next_episode_path() for a free name)')
        if self.temp_path.exists():
            raise FileExistsError(f'{self.temp_path} exists: an interrupted recording; salvage it '
                                  f'with `vla dataset recover {self.temp_path}` or delete it')
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._check_free_space()
            # 'x': fail rather than clobber a temporary file created meanwhile
            self._file = h5py.File(self.temp_path, 'x', libver=_LIBVER)
        except OSError as exc:
            raise EpisodeWriteError(f'cannot create episode {self.temp_path}: {exc}') from exc
        try:
            self._create_layout(created or _now_iso())
            self._file.flush()
            self._file.swmr_mode = True
        except (OSError, RuntimeError, ValueError) as exc:
            self._discard()
            raise EpisodeWriteError(f'cannot create episode {self.temp_path}: {exc}') from exc

    def _create_layout(self, created: str) -> None:
        f = self._file
        assert f is not None
        n, a = len(self.joint_names), len(self.action_names)

        def images(name: str, shape: tuple[int, int, int]) -> None:
            self._datasets[name] = f.create_dataset(
                name, shape=(0, *shape), maxshape=(None, *shape), dtype=np.uint8,
                chunks=(1, *shape), **_IMAGE_COMPRESSION)

        images(IMAGES, self.image_shape)
        for camera, shape in self.camera_shapes.items():
            images(camera_dataset(camera), shape)
        self._frame_datasets = {IMAGES, *(camera_dataset(c) for c in self.camera_shapes)}
        for name, width in ((JOINT_POSITIONS, n), (JOINT_VELOCITIES, n), (ACTIONS, a)):
            self._datasets[name] = f.create_dataset(
                name, shape=(0, width), maxshape=(None, width), dtype=np.float32,
                chunks=(_ROW_CHUNK, width))
        # NaN fill marks rows whose step was never completed (timestamps are written last).
        self._datasets[TIMESTAMPS] = f.create_dataset(
            TIMESTAMPS, shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(_ROW_CHUNK,),
            fillvalue=np.nan)
        string = h5py.string_dtype()
        f.attrs['language_command'] = self.language_command
        f.attrs['success'] = False
        f.attrs['episode_id'] = self.episode_id
        f.attrs['duration'] = 0
        f.attrs['fps'] = self.fps
        f.attrs['joint_names'] = np.array(self.joint_names, dtype=string)
        f.attrs['action_names'] = np.array(self.action_names, dtype=string)
        f.attrs['schema_version'] = SCHEMA_VERSION
        f.attrs['robot'] = self.robot
        f.attrs['created'] = created
        f.attrs['cameras'] = np.array(self.cameras, dtype=string)
        f.attrs['complete'] = False  # set True by close(); recovery leaves it False

    # -- per step ---------------------------------------------------------------------------
    def _vector(self, value: Any, width: int, what: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        if arr.shape != (width,):
            raise ValueError(f'{what} has {arr.size} values, expected {width}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'{what} has non-finite values: {arr.tolist()}')
        return arr

    @staticmethod
    def _image(value: Any, shape: tuple[int, int, int], what: str) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype != np.uint8 or arr.shape != shape:
            raise ValueError(f'{what} must be a uint8 array of shape {shape}, '
                             f'got {arr.dtype} {arr.shape}')
        return arr

    def append(self, image: np.ndarray, joint_positions: Sequence[float],
               joint_velocities: Sequence[float], action: Sequence[float], timestamp: float,
               extra_images: Mapping[str, np.ndarray] | None = None) -> None:
        """Write one time step.

        Raises ValueError (the episode stays open) for a wrong shape, a non-finite value or a
        timestamp that does not increase; :class:`EpisodeWriteError` (the episode is aborted)
        when the file cannot be written.
        """
        if self._file is None:
            raise RuntimeError(f'episode {self.path} is already closed or aborted')
        n, a = len(self.joint_names), len(self.action_names)
        img = self._image(image, self.image_shape, 'image')
        extra = dict(extra_images or {})
        if sorted(extra) != sorted(self.cameras):
            raise ValueError(f'extra_images must hold exactly the cameras {self.cameras}, '
                             f'got {sorted(extra)}')
        extra = {c: self._image(v, self.camera_shapes[c], f'image of camera {c!r}')
                 for c, v in extra.items()}
        q = self._vector(joint_positions, n, 'joint_positions')
        dq = self._vector(joint_velocities, n, 'joint_velocities')
        act = self._vector(action, a, 'action')
        t = float(timestamp)
        if not math.isfinite(t) or t <= self._last_timestamp:
            raise ValueError(f'timestamp {t!r} does not increase (previous {self._last_timestamp!r})')
        i = self.length
        try:
            if i % self.flush_every == 0 and i:
                self._check_free_space()
            rows = ((IMAGES, img), *((camera_dataset(c), v) for c, v in extra.items()),
                    (JOINT_POSITIONS, q), (JOINT_VELOCITIES, dq), (ACTIONS, act),
                    (TIMESTAMPS, t))  # timestamps last: a step counts once they are written
            for name, row in rows:
                ds = self._datasets[name]
                ds.resize(i + 1, axis=0)
                if name in self._frame_datasets:
                    # one frame is one chunk: deflate it here (the GIL is released while zlib
                    # runs) and store it as is -- the same gzip-filtered chunk HDF5 would write,
                    # without the chunk cache deferring the compression to the next flush
                    ds.id.write_direct_chunk(
                        (i, 0, 0, 0), zlib.compress(np.ascontiguousarray(row).tobytes(),
                                                    _IMAGE_COMPRESSION['compression_opts']))
                else:
                    ds[i] = row
            self.length = i + 1
            self._last_timestamp = t
            if self.length % self.flush_every == 0:
                self._file.flush()
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise EpisodeWriteError(f'writing step {i} of {self.temp_path} failed ({exc}); '
                                    'the episode was aborted') from exc

    def _check_free_space(self) -> None:
        """Stop before the disk is full: HDF5 cannot be closed cleanly after a failed write."""
        if self.min_free_bytes <= 0:
            return
        directory = self.temp_path.parent
        stat = os.statvfs(directory)
        free = stat.f_bavail * stat.f_frsize
        if free < self.min_free_bytes:
            raise OSError(errno.ENOSPC, f'only {free / 2**20:.1f} MB free on {directory} '
                          f'(a recording stops below {self.min_free_bytes / 2**20:.1f} MB); '
                          'free some space or record elsewhere')

    def flush(self) -> None:
        """Push everything written so far to disk."""
        if self._file is not None:
            self._file.flush()

    # -- end of episode -----------------------------------------------------------------------
    def close(self, success: bool, attrs: Mapping[str, Any] | None = None) -> Path:
        """Write ``success``, ``duration`` (= T) and ``attrs``, then rename to the final name."""
        if self._file is None:
            raise RuntimeError(f'episode {self.path} is already closed or aborted')
        if self.length == 0:
            self.abort()
            raise ValueError(f'episode {self.path} has no steps; nothing was saved')
        try:
            self._datasets.clear()
            self._file.close()
            self._file = None
            with h5py.File(self.temp_path, 'r+') as f:
                f.attrs['complete'] = True
                for key, value in (attrs or {}).items():
                    f.attrs[key] = value
                f.attrs['success'] = bool(success)
                f.attrs['duration'] = int(self.length)
            with open(self.temp_path, 'rb+') as fh:
                os.fsync(fh.fileno())
            _link_no_overwrite(self.temp_path, self.path)
            fsync_dir(self.path.parent)
        except FileExistsError as exc:
            raise EpisodeWriteError(f'{self.path} appeared while recording; the episode is kept '
                                    f'as {self.temp_path}') from exc
        except (OSError, RuntimeError, TypeError) as exc:
            self._discard()
            raise EpisodeWriteError(f'finishing episode {self.path} failed ({exc}); '
                                    'the episode was aborted') from exc
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the episode: close and delete the temporary file."""
        self._discard()

    def _discard(self) -> None:
        self._datasets.clear()
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                pass
            self._file = None
        try:
            self.temp_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning('could not delete %s: %s', self.temp_path, exc)

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._file is not None:
            self.abort()


# -- reading ------------------------------------------------------------------------------------
def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_attr_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Episode:
    """A lazy reader over one episode file (a context manager; the datasets are h5py datasets)."""

    def __init__(self, path: str | Path, file: h5py.File) -> None:
        self.path = Path(path)
        self.file = file
        self.attrs: dict[str, Any] = {k: _attr_value(v) for k, v in file.attrs.items()}
        self.images: h5py.Dataset = file[IMAGES]
        self.joint_positions: h5py.Dataset = file[JOINT_POSITIONS]
        self.joint_velocities: h5py.Dataset = file[JOINT_VELOCITIES]
        self.actions: h5py.Dataset = file[ACTIONS]
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
        return list(self.attrs['action_names'])

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


def _open_h5(path: Path, swmr: bool = False) -> h5py.File:
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


def _schema_problems(f: h5py.File) -> list[str]:
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
    cameras = _attr_value(f.attrs.get('cameras', []))
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
    joint_names = _attr_value(f.attrs.get('joint_names', []))
    action_names = _attr_value(f.attrs.get('action_names', []))
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


def open_episode(path: str | Path) -> Episode:
    """Open an episode for lazy reading; raises :class:`EpisodeFormatError` naming the file and
    the fault for corrupt, truncated or non-schema files (FileNotFoundError when missing)."""
    path = Path(path)
    f = _open_h5(path)
    try:
        problems = _schema_problems(f)
        if problems:
            raise EpisodeFormatError(f'{path}: ' + '; '.join(problems))
        return Episode(path, f)
    except EpisodeFormatError:
        f.close()
        raise
    except (OSError, KeyError, TypeError, ValueError) as exc:
        f.close()
        raise EpisodeFormatError(f'{path}: unreadable episode ({exc})') from exc


def _first_bad_row(data: np.ndarray) -> tuple[int, int] | None:
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
        f = _open_h5(path)
    except (EpisodeFormatError, FileNotFoundError) as exc:
        return [str(exc).removeprefix(f'{path}: ')]
    try:
        problems = _schema_problems(f)
        if any(p.startswith(('no schema_version', 'schema_version', 'missing dataset'))
               for p in problems):
            return problems
        joint_names = _attr_value(f.attrs.get('joint_names', []))
        action_names = _attr_value(f.attrs.get('action_names', []))
        for name, columns in ((JOINT_POSITIONS, joint_names), (JOINT_VELOCITIES, joint_names),
                              (ACTIONS, action_names)):
            ds = f[name]
            if ds.ndim != 2:
                continue
            bad = _first_bad_row(ds[()])
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
            for name in [IMAGES] + [camera_dataset(c) for c in _attr_value(f.attrs.get('cameras', []))]:
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


# -- recovery -------------------------------------------------------------------------------------
def recover_episode(tmp_path: str | Path) -> Path:
    """Salvage an interrupted recording into a final, valid episode with ``success=False``.

    Keeps every step completed before the interruption (up to the last flush at least),
    copies it into ``<final name>`` (the temporary name without ``.tmp``) with the attributes
    ``recovered=True`` and ``complete=False``, then deletes the temporary file.  Raises
    :class:`EpisodeFormatError` when nothing can be salvaged and FileExistsError when the final
    name is taken.
    """
    tmp_path = Path(tmp_path)
    if not tmp_path.name.endswith(TMP_SUFFIX):
        raise ValueError(f'{tmp_path} is not a temporary episode file (*{TMP_SUFFIX})')
    final = tmp_path.with_name(tmp_path.name[:-len(TMP_SUFFIX)])
    if final.exists():
        raise FileExistsError(f'cannot recover {tmp_path}: {final} already exists')
    try:
        src = _open_h5(tmp_path, swmr=True)
    except EpisodeFormatError:
        raise
    except OSError as exc:
        raise EpisodeFormatError(f'{tmp_path}: cannot be opened for recovery ({exc})') from exc
    with src:
        problems = [p for p in _schema_problems(src)
                    if not p.startswith(('datasets differ', 'attrs["duration"]', 'the episode has no'))]
        if problems:
            raise EpisodeFormatError(f'{tmp_path}: cannot recover: ' + '; '.join(problems))
        attrs = {k: _attr_value(v) for k, v in src.attrs.items()}
        cameras = list(attrs.get('cameras') or [])
        image_names = [IMAGES] + [camera_dataset(c) for c in cameras]
        names = image_names + [JOINT_POSITIONS, JOINT_VELOCITIES, ACTIONS, TIMESTAMPS]
        steps = min(src[n].shape[0] for n in names)
        t = src[TIMESTAMPS][:steps]
        complete = np.isfinite(t)
        steps = int(np.argmin(complete)) if not complete.all() else steps
        rows = {n: src[n][:steps] for n in (JOINT_POSITIONS, JOINT_VELOCITIES, ACTIONS)}
        for n, data in rows.items():  # keep only fully finite leading steps
            bad = _first_bad_row(data)
            if bad is not None:
                steps = min(steps, bad[0])
        if steps > 1:
            back = np.flatnonzero(np.diff(t[:steps]) <= 0)
            if back.size:
                steps = int(back[0]) + 1
        if steps == 0:
            raise EpisodeFormatError(f'{tmp_path}: no complete step to recover')
        writer = EpisodeWriter(
            final, joint_names=attrs['joint_names'], action_names=attrs['action_names'],
            image_shape=src[IMAGES].shape[1:], fps=float(attrs['fps']),
            language_command=str(attrs.get('language_command', '')),
            robot=str(attrs.get('robot', '')), episode_id=int(attrs.get('episode_id', -1)),
            cameras=cameras, camera_shapes={c: src[camera_dataset(c)].shape[1:] for c in cameras},
            temp_path=final.with_name(final.name + '.recovering'),
            created=str(attrs.get('created') or _now_iso()), flush_every=256)
        with writer:
            for i in range(steps):
                try:
                    frames = {n: src[n][i] for n in image_names}
                except (OSError, RuntimeError, ValueError) as exc:
                    log.warning('%s: frame %d unreadable (%s); keeping %d steps', tmp_path, i, exc, i)
                    steps = i
                    break
                writer.append(frames[IMAGES], rows[JOINT_POSITIONS][i], rows[JOINT_VELOCITIES][i],
                              rows[ACTIONS][i], float(t[i]),
                              extra_images={c: frames[camera_dataset(c)] for c in cameras})
            if steps == 0:
                writer.abort()
                raise EpisodeFormatError(f'{tmp_path}: no readable frame to recover')
            extra = {k: v for k, v in attrs.items()
                     if k not in REQUIRED_ATTRS and k not in ('cameras', 'complete')}
            extra.update(recovered=True, recovered_from=tmp_path.name, complete=False)
            path = writer.close(success=False, attrs=extra)
    tmp_path.unlink()
    return path


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
