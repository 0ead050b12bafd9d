"""Streams one HDF5 episode to disk step by step (the schema is :mod:`vla_collect.episode_schema`).

Writing is streamed step by step (nothing is held in memory) into ``<final>.tmp`` in HDF5's
single-writer/multiple-reader (SWMR) mode, which keeps the file consistent on disk at every
flush; a flush every ``flush_every`` steps (one second at 30 Hz) bounds what a crash loses.
:meth:`EpisodeWriter.close` writes the final attributes and only then gives the file its final
name, so a final name always holds a complete episode.  An interrupted ``.tmp`` file is
salvaged with :func:`vla_collect.episode_recovery.recover_episode` (or ``vla dataset recover``).

No ROS import here: the recorder node, the importers and the controller's rollouts use it.
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vla_collect.episode_schema import (ACTIONS, IMAGES, JOINT_POSITIONS, JOINT_VELOCITIES,
                                        SCHEMA_VERSION, TIMESTAMPS, EpisodeWriteError,
                                        camera_dataset, episode_number, temp_path_for)
from vla_common.files import fsync_dir

#: end-effector actions beside the joint ones (``ee_action_names``): their names in attrs['action_ee_names']
ACTIONS_EE = 'actions_ee'

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


def now_iso() -> str:
    """The local time as ISO 8601 with its UTC offset (the ``created`` attribute)."""
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


class EpisodeWriter:
    """Streams one episode to ``<path>.tmp`` and renames it to ``path`` on :meth:`close`.

    Any number of joints and actions and any image size: nothing here assumes the simulated
    arm.  ``cameras`` names extra cameras (stored as ``/observations/images_<camera>``) and
    ``camera_shapes`` their (H, W, 3) shapes (default: ``image_shape``).  ``ee_action_names``
    adds ``/actions_ee`` (T, E): the end-effector command (e.g. Cartesian deltas) of which
    ``/actions`` holds the joint targets the robot was given, named in ``attrs['action_ee_names']``,
    with ``attrs['action_space'] = 'ee_delta'`` (the space the source commanded in); every step
    then takes ``action_ee``.  Use as a context
    manager: leaving the block with an exception aborts (deletes) the episode, leaving it
    without :meth:`close` keeps the temporary file for recovery.
    """

    def __init__(self, path: str | Path, *, joint_names: Sequence[str], action_names: Sequence[str],
                 image_shape: Sequence[int] = (224, 224, 3), fps: float = 30.0,
                 language_command: str = '', robot: str = 'vla_sim', episode_id: int | None = None,
                 cameras: Sequence[str] = (), camera_shapes: Mapping[str, Sequence[int]] | None = None,
                 flush_every: int = 30, temp_path: str | Path | None = None,
                 created: str | None = None,
                 min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
                 ee_action_names: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.temp_path = Path(temp_path) if temp_path is not None else temp_path_for(self.path)
        self.joint_names = _names(joint_names, 'joint_names')
        self.action_names = _names(action_names, 'action_names')
        self.ee_action_names = _names(ee_action_names, 'ee_action_names') if ee_action_names else []
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
            self._create_layout(created or now_iso())
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
        widths = ((JOINT_POSITIONS, n), (JOINT_VELOCITIES, n), (ACTIONS, a),
                  *(((ACTIONS_EE, len(self.ee_action_names)),) if self.ee_action_names else ()))
        for name, width in widths:
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
        if self.ee_action_names:
            f.attrs['action_ee_names'] = np.array(self.ee_action_names, dtype=string)
            f.attrs['action_space'] = 'ee_delta'

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
               extra_images: Mapping[str, np.ndarray] | None = None,
               action_ee: Sequence[float] | None = None) -> None:
        """Write one time step (``action_ee``: exactly when the episode has ``ee_action_names``).

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
        if (action_ee is None) != (not self.ee_action_names):
            raise ValueError(f'action_ee must be given exactly when ee_action_names are '
                             f'({self.ee_action_names}), got {action_ee!r}')
        ee = () if action_ee is None else (
            (ACTIONS_EE, self._vector(action_ee, len(self.ee_action_names), 'action_ee')),)
        t = float(timestamp)
        if not math.isfinite(t) or t <= self._last_timestamp:
            raise ValueError(f'timestamp {t!r} does not increase (previous {self._last_timestamp!r})')
        i = self.length
        try:
            if i % self.flush_every == 0 and i:
                self._check_free_space()
            rows = ((IMAGES, img), *((camera_dataset(c), v) for c, v in extra.items()),
                    (JOINT_POSITIONS, q), (JOINT_VELOCITIES, dq), (ACTIONS, act), *ee,
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
