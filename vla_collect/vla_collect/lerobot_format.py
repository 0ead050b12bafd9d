"""LeRobotDataset v3.0 <-> this suite's HDF5 episodes (``vla dataset export|import --format lerobot``).

The on-disk layout written (and read) is LeRobot's own v3.0 layout, the one ``LeRobotDataset``
(the ``lerobot`` package, 0.4.x) loads from a local ``root``::

    meta/info.json                       codebase_version "v3.0", fps, features, paths, totals
    meta/tasks.parquet                   one row per task string (the pandas index), task_index
    meta/stats.json                      min/max/mean/std/count/q01..q99 of every feature
    meta/episodes/chunk-000/file-000.parquet
                                         one row per episode: episode_index, tasks, length,
                                         data/{chunk,file}_index, dataset_{from,to}_index,
                                         videos/<key>/{chunk_index,file_index,from_timestamp,
                                         to_timestamp}, meta/episodes/{chunk,file}_index,
                                         stats/<feature>/<stat>, and (extra) success, source_episode
    data/chunk-000/file-000.parquet      one row per frame: observation.state, observation.velocity,
                                         action, next.success, next.done, source_timestamp,
                                         timestamp, frame_index, episode_index, index, task_index
    videos/observation.images.<camera>/chunk-000/file-000.mp4
                                         every episode of a camera back to back (frame k of the file
                                         at k/fps s; an episode starts at its from_timestamp)

Mapping: ``observation.state`` = joint positions, ``observation.velocity`` = joint velocities,
``action`` = actions (names = joint/action names), ``observation.images.<camera>`` = each camera
(the main camera under the name given, ``front`` by default), the instruction = the task,
``next.success`` = the success flag on the last frame (and ``success`` in the episodes table).
LeRobot's ``timestamp`` is ``frame_index / fps`` (its video decoders look frames up by it); the
recorded time stamps are kept exactly in ``source_timestamp`` (float64).

Cameras are H.264 (libx264, default) or AV1 (libsvtav1) video through PyAV, or PNG images in the
parquet files (LeRobot's ``image`` dtype: lossless, larger).  Arrays are copied bit for bit;
video frames come back within the PSNR the export report states for the codec settings.

No ROS import here.  Writing goes to ``OUT.tmp-<pid>`` and is renamed to ``OUT`` at the end;
import writes episodes through :class:`~vla_collect.episode_io.EpisodeWriter` (temporary name,
renamed when complete).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vla_collect.episode_reader import load_valid_episodes, open_episode
from vla_collect.episode_schema import next_episode_path
from vla_collect.episode_writer import EpisodeWriter

CODEBASE_VERSION = 'v3.0'
STATE = 'observation.state'
VELOCITY = 'observation.velocity'
ACTION = 'action'
IMAGES_PREFIX = 'observation.images.'
SUCCESS = 'next.success'
DONE = 'next.done'
SOURCE_TIMESTAMP = 'source_timestamp'
INFO_PATH = 'meta/info.json'
STATS_PATH = 'meta/stats.json'
TASKS_PATH = 'meta/tasks.parquet'
EXPORT_META_PATH = 'meta/vla_ros2.json'
CHUNK_FILE = 'chunk-{chunk_index:03d}/file-{file_index:03d}'
DATA_PATH = 'data/' + CHUNK_FILE + '.parquet'
VIDEO_PATH = 'videos/{video_key}/' + CHUNK_FILE + '.mp4'
EPISODES_PATH = 'meta/episodes/' + CHUNK_FILE + '.parquet'
CHUNKS_SIZE = 1000  # files per chunk directory (LeRobot's default)
DATA_FILE_MB = 100  # a data file is closed at the episode that takes it past this (LeRobot's)
VIDEO_FILE_MB = 200  # likewise for a video file
INDEX_FEATURES = ('timestamp', 'frame_index', 'episode_index', 'index', 'task_index')
DEFAULT_FEATURES = {
    'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
    'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
}
#: features a LeRobot dataset may carry that an episode has no place for: dropped, and reported
DROPPABLE = ('next.reward',)
NUMERIC_DTYPES = ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8',
                  'uint16', 'uint32', 'uint64', 'bool')
QUANTILES = {'q01': 0.01, 'q10': 0.10, 'q50': 0.50, 'q90': 0.90, 'q99': 0.99}
#: video codecs: our name -> (PyAV encoder, LeRobot's name for it in info.json)
VIDEO_CODECS = {'h264': ('libx264', 'h264'), 'av1': ('libsvtav1', 'av1')}
IMAGE_CODECS = ('png',)
#: the camera that becomes the main image on import, when the dataset does not say
MAIN_CAMERA_PREFERENCE = ('front', 'top', 'cam_high', 'image', 'main')
IMAGE_STATS_FRAMES = 100  # frames per episode sampled for the image statistics (LeRobot: >= 100)


class LeRobotFormatError(ValueError):
    """A dataset or episode directory that cannot be converted; the message names the file or
    feature and what was expected."""


def _pa():
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


def _fps_value(fps: float) -> int | float:
    return int(fps) if float(fps).is_integer() else float(fps)


# -- statistics (LeRobot's compute_stats layout) ---------------------------------------------------
def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count/quantiles over time of a (T,) or (T, D) array, as LeRobot's
    ``compute_episode_stats`` lays them out (shape (D,), or (1,) for a scalar feature)."""
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)
    stats = {'min': x.min(0), 'max': x.max(0), 'mean': x.mean(0), 'std': x.std(0),
             'count': np.array([len(x)])}
    for key, q in zip(QUANTILES, np.quantile(x, list(QUANTILES.values()), axis=0)):
        stats[key] = q
    return stats


class ImageStats:
    """Per-channel statistics of sampled frames from 256-bin histograms (exact quantiles),
    normalised to [0, 1] and shaped (3, 1, 1) as LeRobot stores them."""

    def __init__(self) -> None:
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        small = frame[::2, ::2] if frame.shape[0] > 150 else frame  # as LeRobot's downsampling
        for c in range(3):
            self.hist[c] += np.bincount(small[..., c].ravel(), minlength=256)
        self.frames += 1

    def result(self) -> dict[str, np.ndarray]:
        v = np.arange(256) / 255.0
        n = self.hist.sum(1)
        mean = (self.hist * v).sum(1) / n
        std = np.sqrt((self.hist * (v[None] - mean[:, None]) ** 2).sum(1) / n)
        nonzero = [np.flatnonzero(h) for h in self.hist]
        cum = np.cumsum(self.hist, axis=1)
        out = {'min': np.array([v[i[0]] for i in nonzero]), 'max': np.array([v[i[-1]] for i in nonzero]),
               'mean': mean, 'std': std}
        for key, q in QUANTILES.items():
            out[key] = np.array([v[np.searchsorted(cum[c], q * n[c])] for c in range(3)])
        out = {k: a.reshape(3, 1, 1) for k, a in out.items()}
        out['count'] = np.array([self.frames])
        return out


def aggregate_stats(per_episode: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> dict:
    """Dataset statistics from episode statistics (LeRobot's ``aggregate_stats``: count-weighted
    mean and pooled variance, extreme min/max, count-weighted quantiles)."""
    out: dict = {}
    for key in per_episode[0]:
        items = [s[key] for s in per_episode]
        counts = np.array([s['count'][0] for s in items], dtype=np.float64)
        total = counts.sum()
        shape = (-1,) + (1,) * np.asarray(items[0]['mean']).ndim
        w = counts.reshape(shape)
        means = np.stack([s['mean'] for s in items])
        mean = (means * w).sum(0) / total
        var = ((np.stack([s['std'] for s in items]) ** 2 + (means - mean) ** 2) * w).sum(0) / total
        agg = {'min': np.min(np.stack([s['min'] for s in items]), 0),
               'max': np.max(np.stack([s['max'] for s in items]), 0),
               'mean': mean, 'std': np.sqrt(var), 'count': np.array([int(total)])}
        for q in QUANTILES:
            agg[q] = (np.stack([s[q] for s in items]) * w).sum(0) / total
        out[key] = agg
    return out


def _jsonable(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


# -- parquet helpers ---------------------------------------------------------------------------------
def _tasks_table(tasks: Sequence[str]):
    """meta/tasks.parquet as pandas writes ``DataFrame({'task_index': ...}, index=tasks)``
    (LeRobot reads it with ``pd.read_parquet``: the task strings must come back as the index)."""
    pa, _ = _pa()
    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      '__index_level_0__': pa.array(list(tasks), pa.string())})
    pandas_meta = {
        'index_columns': ['__index_level_0__'],
        'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                            'numpy_type': 'object', 'metadata': {'encoding': 'UTF-8'}}],
        'columns': [{'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
                     'numpy_type': 'int64', 'metadata': None},
                    {'name': None, 'field_name': '__index_level_0__', 'pandas_type': 'unicode',
                     'numpy_type': 'object', 'metadata': None}],
        'creator': {'library': 'pyarrow', 'version': pa.__version__},
        'pandas_version': '2.2.3'}
    return table.replace_schema_metadata({b'pandas': json.dumps(pandas_meta).encode()})


def _fixed_list(rows: np.ndarray, dtype):
    pa, _ = _pa()
    rows = np.ascontiguousarray(rows)
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1), dtype), rows.shape[1])


def _read_parquet(path: Path, columns: Sequence[str] | None = None):
    pa, pq = _pa()
    if not path.is_file():
        raise LeRobotFormatError(f'{path}: missing (the dataset\'s meta/info.json or episodes table '
                                 'points to it)')
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as exc:
        raise LeRobotFormatError(f'{path}: not a readable parquet file (truncated or corrupt?): '
                                 f'{exc}') from None


# -- video ------------------------------------------------------------------------------------------
@dataclass
class VideoSettings:
    """How camera frames are stored."""

    codec: str = 'h264'  # h264 | av1 (video through PyAV) | png (lossless images in the parquet)
    crf: int | None = None  # quality (lower = better); default 18 for h264, 30 for av1 (LeRobot's)
    gop: int = 2  # keyframe interval: LeRobot's default, so random access decodes <= 2 frames
    preset: str | None = None  # encoder speed preset (libx264: 'veryfast' by default)
    pix_fmt: str | None = None  # yuv420p (default: what players expect) | yuv444p (sharper colour)

    def __post_init__(self) -> None:
        if self.codec not in (*VIDEO_CODECS, *IMAGE_CODECS):
            raise LeRobotFormatError(f'unknown camera codec {self.codec!r}; expected one of '
                                     f'{[*VIDEO_CODECS, *IMAGE_CODECS]}')
        if self.crf is None:
            self.crf = 30 if self.codec == 'av1' else 18
        if self.gop < 1:
            raise LeRobotFormatError(f'gop must be >= 1, got {self.gop}')
        if self.pix_fmt not in (None, 'yuv420p', 'yuv444p'):
            raise LeRobotFormatError(f'pix_fmt must be yuv420p or yuv444p, got {self.pix_fmt!r}')
        if self.codec == 'av1' and self.pix_fmt == 'yuv444p':
            raise LeRobotFormatError('libsvtav1 encodes 4:2:0 only; use --pix-fmt yuv420p or h264')

    @property
    def is_video(self) -> bool:
        return self.codec in VIDEO_CODECS

    def pix_fmt_for(self, shape: Sequence[int]) -> str:
        # 4:2:0 (what players and LeRobot's visualiser expect) needs even sizes
        even = shape[0] % 2 == 0 and shape[1] % 2 == 0
        if self.pix_fmt == 'yuv420p' and not even:
            raise LeRobotFormatError(f'yuv420p needs even image sizes, got {tuple(shape[:2])}; '
                                     'use --pix-fmt yuv444p')
        return self.pix_fmt or ('yuv420p' if even else 'yuv444p')


class VideoFileWriter:
    """Frames of one camera into one MP4 file, frame k at k/fps seconds."""

    def __init__(self, path: Path, fps: float, shape: Sequence[int], settings: VideoSettings):
        import av
        encoder, _ = VIDEO_CODECS[settings.codec]
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(path), mode='w', format='mp4')
        options = {'g': str(settings.gop), 'crf': str(settings.crf)}
        if settings.codec == 'h264':
            options['preset'] = settings.preset or 'veryfast'
        elif settings.preset:
            options['preset'] = settings.preset
        try:
            self.stream = self.container.add_stream(encoder, rate=self.rate, options=options)
        except (av.error.FFmpegError, ValueError) as exc:
            self.container.close()
            raise LeRobotFormatError(f'cannot encode {settings.codec} ({encoder}) with this PyAV '
                                     f'build: {exc}') from None
        self.stream.width, self.stream.height = int(shape[1]), int(shape[0])
        self.stream.pix_fmt = settings.pix_fmt_for(shape)
        self.stream.codec_context.time_base = 1 / self.rate
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import av
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0


class VideoFrameReader:
    """Frames of one MP4 file by time, decoded forward (re-opened and seeked when asked for an
    earlier time), so reading episodes in order decodes each frame once."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.tolerance = 0.5 / fps
        self._open(None)

    def _open(self, seek_to: float | None) -> None:
        import av
        if not self.path.is_file():
            raise LeRobotFormatError(f'{self.path}: missing video file')
        try:
            self.container = av.open(str(self.path))
            stream = self.container.streams.video[0]
            stream.thread_type = 'AUTO'
            if seek_to is not None and seek_to > 0:
                self.container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
            self._frames = self.container.decode(stream)
        except (av.error.FFmpegError, IndexError) as exc:
            raise LeRobotFormatError(f'{self.path}: not a readable video ({exc})') from None
        self._current = None  # (time, ndarray) of the last decoded frame

    def _next(self):
        import av
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            raise LeRobotFormatError(f'{self.path}: decoding failed ({exc}); truncated or '
                                     'corrupt video?') from None
        return float(frame.time), frame

    def frame_at(self, t: float) -> np.ndarray:
        if self._current is not None and self._current[0] > t + self.tolerance:
            self.close()
            self._open(t)
        while self._current is None or self._current[0] < t - self.tolerance:
            item = self._next()
            if item is None:
                have = f'last frame at {self._current[0]:.4f} s' if self._current else 'no frame'
                raise LeRobotFormatError(f'{self.path}: no frame at {t:.4f} s ({have}); '
                                         'truncated video or wrong from_timestamp?')
            self._current = item
        time, frame = self._current
        if abs(time - t) > self.tolerance:
            raise LeRobotFormatError(f'{self.path}: no frame within {self.tolerance:.4f} s of '
                                     f'{t:.4f} s (nearest at {time:.4f} s)')
        if not isinstance(frame, np.ndarray):
            frame = frame.to_ndarray(format='rgb24')
            self._current = (time, frame)
        return frame

    def close(self) -> None:
        self.container.close()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images; inf when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# -- export -----------------------------------------------------------------------------------------
@dataclass
class _Layout:
    """What every exported episode shares (a LeRobot dataset has one set of features)."""

    joint_names: list[str]
    action_names: list[str]
    fps: float
    cameras: dict[str, tuple[int, int, int]]  # camera name -> (H, W, 3), main first
    main_camera: str

    @classmethod
    def of(cls, path: Path, main_camera: str) -> _Layout:
        with open_episode(path) as ep:
            cameras = {main_camera: tuple(ep.images.shape[1:])}
            for c in ep.cameras:
                if c == main_camera:
                    raise LeRobotFormatError(f'{path}: an extra camera is named {c!r}, the name '
                                             'given to the main camera; pick another --main-camera')
                cameras[c] = tuple(ep.camera_images(c).shape[1:])
            return cls(ep.joint_names, ep.action_names, ep.fps, cameras, main_camera)

    def check(self, path: Path) -> None:
        other = _Layout.of(path, self.main_camera)
        for what in ('joint_names', 'action_names', 'fps', 'cameras'):
            if getattr(other, what) != getattr(self, what):
                raise LeRobotFormatError(
                    f'{path}: {what} {getattr(other, what)} differ from the first episode\'s '
                    f'{getattr(self, what)}; a LeRobot dataset has one set of features (export '
                    'episodes of one robot and camera setup together)')

    def features(self, settings: VideoSettings) -> dict:
        n, a = len(self.joint_names), len(self.action_names)
        features: dict = {
            STATE: {'dtype': 'float32', 'shape': [n], 'names': list(self.joint_names)},
            VELOCITY: {'dtype': 'float32', 'shape': [n], 'names': list(self.joint_names)},
            ACTION: {'dtype': 'float32', 'shape': [a], 'names': list(self.action_names)},
        }
        for camera, shape in self.cameras.items():
            ft = {'dtype': 'video' if settings.is_video else 'image', 'shape': list(shape),
                  'names': ['height', 'width', 'channels']}
            if settings.is_video:
                ft['info'] = {'video.height': shape[0], 'video.width': shape[1],
                              'video.codec': VIDEO_CODECS[settings.codec][1],
                              'video.pix_fmt': settings.pix_fmt_for(shape), 'video.is_depth_map': False,
                              'video.fps': _fps_value(self.fps), 'video.channels': 3,
                              'has_audio': False}
            features[IMAGES_PREFIX + camera] = ft
        features[SUCCESS] = {'dtype': 'bool', 'shape': [1], 'names': None}
        features[DONE] = {'dtype': 'bool', 'shape': [1], 'names': None}
        features[SOURCE_TIMESTAMP] = {'dtype': 'float64', 'shape': [1], 'names': None}
        features.update(json.loads(json.dumps(DEFAULT_FEATURES)))
        return features


class _RollingFiles:
    """chunk/file indices of a file family that starts a new file past a size (LeRobot's rule)."""

    def __init__(self, limit_mb: float):
        self.chunk, self.file, self.limit_mb = 0, 0, limit_mb

    def next(self) -> None:
        self.file += 1
        if self.file == CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0


def _png_struct(frames: Sequence[np.ndarray]):
    import cv2
    pa, _ = _pa()
    blobs = []
    for rgb in frames:
        ok, png = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise LeRobotFormatError('PNG encoding failed')
        blobs.append(png.tobytes())
    return pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), pa.array([None] * len(blobs), pa.string())],
                                      names=['bytes', 'path'])


class LeRobotExporter:
    """Writes episode files as one LeRobot v3.0 dataset (streamed: memory does not grow with the
    recording)."""

    BLOCK = 32  # frames read from HDF5 at a time

    def __init__(self, out: Path, layout: _Layout, settings: VideoSettings, robot_type: str | None,
                 progress=None):
        self.root = out
        self.layout = layout
        self.settings = settings
        self.features = layout.features(settings)
        self.robot_type = robot_type
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.episode_stats: list[dict] = []
        self.frames = 0
        self.progress = progress
        self.data_files = _RollingFiles(DATA_FILE_MB)
        self.data_writer = None
        self.data_path: Path | None = None
        self.video_files = {c: _RollingFiles(VIDEO_FILE_MB) for c in layout.cameras}
        self.video_writers: dict[str, VideoFileWriter] = {}
        self.off_grid: list[dict] = []

    # data parquet
    def _schema(self):
        pa, _ = _pa()
        n, a = len(self.layout.joint_names), len(self.layout.action_names)
        fields = [pa.field(STATE, pa.list_(pa.float32(), n)), pa.field(VELOCITY, pa.list_(pa.float32(), n)),
                  pa.field(ACTION, pa.list_(pa.float32(), a))]
        if not self.settings.is_video:
            png = pa.struct([('bytes', pa.binary()), ('path', pa.string())])
            fields += [pa.field(IMAGES_PREFIX + c, png) for c in self.layout.cameras]
        fields += [pa.field(SUCCESS, pa.bool_()), pa.field(DONE, pa.bool_()),
                   pa.field(SOURCE_TIMESTAMP, pa.float64()), pa.field('timestamp', pa.float32()),
                   pa.field('frame_index', pa.int64()), pa.field('episode_index', pa.int64()),
                   pa.field('index', pa.int64()), pa.field('task_index', pa.int64())]
        return pa.schema(fields)

    def _data_writer(self):
        _, pq = _pa()
        if self.data_writer is not None and self.data_path.stat().st_size / 2**20 >= DATA_FILE_MB:
            self.data_writer.close()
            self.data_writer = None
            self.data_files.next()
        if self.data_writer is None:
            self.data_path = self.root / DATA_PATH.format(chunk_index=self.data_files.chunk,
                                                          file_index=self.data_files.file)
            self.data_path.parent.mkdir(parents=True, exist_ok=True)
            self.data_writer = pq.ParquetWriter(self.data_path, self._schema(), compression='snappy')
        return self.data_writer

    def _video_writer(self, camera: str) -> VideoFileWriter:
        files = self.video_files[camera]
        writer = self.video_writers.get(camera)
        if writer is not None and writer.size_mb() >= VIDEO_FILE_MB:
            writer.close()
            writer = None
            files.next()
        if writer is None:
            path = self.root / VIDEO_PATH.format(video_key=IMAGES_PREFIX + camera,
                                                 chunk_index=files.chunk, file_index=files.file)
            writer = VideoFileWriter(path, self.layout.fps, self.layout.cameras[camera], self.settings)
            self.video_writers[camera] = writer
        return writer

    def add(self, path: Path) -> dict:
        """Append one episode file; returns its summary for the report."""
        pa, _ = _pa()
        ep_index = len(self.episodes)
        with open_episode(path) as ep:
            steps = len(ep)
            task = ep.language_command
            task_index = self.tasks.setdefault(task, len(self.tasks))
            q = np.asarray(ep.joint_positions[()], np.float32)
            dq = np.asarray(ep.joint_velocities[()], np.float32)
            act = np.asarray(ep.actions[()], np.float32)
            t_src = np.asarray(ep.timestamps[()], np.float64)
            frame_index = np.arange(steps, dtype=np.int64)
            timestamp = (frame_index / self.layout.fps).astype(np.float32)
            index = np.arange(self.frames, self.frames + steps, dtype=np.int64)
            done = frame_index == steps - 1
            success = done & bool(ep.success)
            period = 1.0 / self.layout.fps
            drift = np.abs((t_src - t_src[0]) - frame_index * period)
            if steps and drift.max() > 0.5 * period:
                gaps = np.diff(t_src)
                self.off_grid.append({'episode_index': ep_index, 'source': str(path),
                                      'max_gap_s': float(gaps.max()) if len(gaps) else 0.0,
                                      'max_drift_s': float(drift.max())})
            writer = self._data_writer()
            data_file = (self.data_files.chunk, self.data_files.file)
            sources = {c: (ep.images if c == self.layout.main_camera else ep.camera_images(c))
                       for c in self.layout.cameras}
            image_stats = {c: ImageStats() for c in sources}
            stride = max(1, steps // IMAGE_STATS_FRAMES)
            videos = {}
            if self.settings.is_video:
                for c in sources:
                    w = self._video_writer(c)
                    files = self.video_files[c]
                    videos[c] = {'writer': w, 'chunk': files.chunk, 'file': files.file,
                                 'from': w.frames / float(w.rate)}
            for start in range(0, steps, self.BLOCK):
                stop = min(steps, start + self.BLOCK)
                blocks = {c: ds[start:stop] for c, ds in sources.items()}
                for c, block in blocks.items():
                    for i in range(start, stop):
                        if i % stride == 0:
                            image_stats[c].add(block[i - start])
                    if self.settings.is_video:
                        for frame in block:
                            videos[c]['writer'].write(frame)
                rows = slice(start, stop)
                columns = [_fixed_list(q[rows], pa.float32()), _fixed_list(dq[rows], pa.float32()),
                           _fixed_list(act[rows], pa.float32())]
                if not self.settings.is_video:
                    columns += [_png_struct(blocks[c]) for c in self.layout.cameras]
                columns += [pa.array(success[rows]), pa.array(done[rows]), pa.array(t_src[rows]),
                            pa.array(timestamp[rows]), pa.array(frame_index[rows]),
                            pa.array(np.full(stop - start, ep_index, np.int64)), pa.array(index[rows]),
                            pa.array(np.full(stop - start, task_index, np.int64))]
                writer.write_table(pa.Table.from_arrays(columns, schema=self._schema()))
                if self.progress is not None:
                    self.progress.update(stop - start)
            stats = {STATE: vector_stats(q), VELOCITY: vector_stats(dq), ACTION: vector_stats(act)}
            for c, st in image_stats.items():
                stats[IMAGES_PREFIX + c] = st.result()
            stats.update({SUCCESS: vector_stats(success), DONE: vector_stats(done),
                          SOURCE_TIMESTAMP: vector_stats(t_src), 'timestamp': vector_stats(timestamp),
                          'frame_index': vector_stats(frame_index),
                          'episode_index': vector_stats(np.full(steps, ep_index)),
                          'index': vector_stats(index),
                          'task_index': vector_stats(np.full(steps, task_index))})
            row: dict[str, Any] = {
                'episode_index': ep_index, 'tasks': [task], 'length': steps,
                'data/chunk_index': data_file[0], 'data/file_index': data_file[1],
                'dataset_from_index': self.frames, 'dataset_to_index': self.frames + steps}
            for c, v in videos.items():
                key = IMAGES_PREFIX + c
                row.update({f'videos/{key}/chunk_index': v['chunk'], f'videos/{key}/file_index': v['file'],
                            f'videos/{key}/from_timestamp': v['from'],
                            f'videos/{key}/to_timestamp': v['from'] + steps / float(v['writer'].rate)})
            row.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0,
                        'success': bool(ep.success), 'source_episode': path.name,
                        'source_episode_id': ep.episode_id})
            for key, st in stats.items():
                for name, value in st.items():
                    row[f'stats/{key}/{name}'] = np.asarray(value).tolist()
            self.episodes.append(row)
            self.episode_stats.append(stats)
            self.frames += steps
            return {'source': str(path), 'episode_index': ep_index, 'steps': steps,
                    'task': task, 'success': bool(ep.success)}

    def finish(self, extra_meta: Mapping[str, Any]) -> None:
        pa, pq = _pa()
        if self.data_writer is not None:
            self.data_writer.close()
        for writer in self.video_writers.values():
            writer.close()
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), path, compression='snappy')
        tasks = sorted(self.tasks, key=self.tasks.get)
        pq.write_table(_tasks_table(tasks), self.root / TASKS_PATH)
        info = {
            'codebase_version': CODEBASE_VERSION, 'robot_type': self.robot_type,
            'total_episodes': len(self.episodes), 'total_frames': self.frames,
            'total_tasks': len(tasks), 'chunks_size': CHUNKS_SIZE,
            'data_files_size_in_mb': DATA_FILE_MB, 'video_files_size_in_mb': VIDEO_FILE_MB,
            'fps': _fps_value(self.layout.fps), 'splits': {'train': f'0:{len(self.episodes)}'},
            'data_path': DATA_PATH, 'video_path': VIDEO_PATH if self.settings.is_video else None,
            'features': self.features}
        (self.root / INFO_PATH).write_text(json.dumps(info, indent=4, ensure_ascii=False))
        (self.root / STATS_PATH).write_text(json.dumps(_jsonable(aggregate_stats(self.episode_stats)),
                                                       indent=4))
        (self.root / EXPORT_META_PATH).write_text(json.dumps(extra_meta, indent=2))

    def abort(self) -> None:
        for closer in [self.data_writer, *self.video_writers.values()]:
            try:
                if closer is not None:
                    closer.close()
            except Exception:  # noqa: BLE001 - the partial output is deleted next
                pass


def export_lerobot(src: Path, out: Path, settings: VideoSettings | None = None,
                   main_camera: str = 'front', robot_type: str | None = None,
                   progress: bool = True) -> dict:
    """Convert every valid episode of ``src`` into the LeRobot v3.0 dataset ``out`` (which must not
    exist).  Returns the report (also written to ``out/meta/vla_ros2.json``)."""
    from tqdm import tqdm
    settings = settings or VideoSettings()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise LeRobotFormatError(f'{src} is not a directory of episodes')
    if out.exists():
        raise LeRobotFormatError(f'{out} already exists; give a new directory (a dataset is '
                                 'written whole, never merged into another)')
    if not re.fullmatch(r'[A-Za-z0-9_]+', main_camera):
        raise LeRobotFormatError(f'--main-camera must be letters, digits and _, got {main_camera!r}')
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        valid, skipped = load_valid_episodes(src)
    if not valid:
        raise LeRobotFormatError(f'no valid episode in {src} (expected episode_*.hdf5 files)')
    layout = _Layout.of(valid[0], main_camera)
    for path in valid[1:]:
        layout.check(path)
    steps = 0
    for path in valid:
        with open_episode(path) as ep:
            steps += len(ep)
            robot_type = robot_type or str(ep.attrs.get('robot') or '') or None
    tmp = out.with_name(f'{out.name}.tmp-{os.getpid()}')
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    bar = tqdm(total=steps, desc='export lerobot', unit='frame', disable=not progress)
    exporter = LeRobotExporter(tmp, layout, settings, robot_type, bar)
    try:
        episodes = [exporter.add(path) for path in valid]
        report = {
            'source': str(src), 'dataset': str(out), 'format': f'LeRobotDataset {CODEBASE_VERSION}',
            'episodes': episodes, 'frames': exporter.frames, 'fps': layout.fps,
            'main_camera': main_camera, 'cameras': {IMAGES_PREFIX + c: list(s) for c, s in layout.cameras.items()},
            'camera_storage': ({'codec': settings.codec, 'encoder': VIDEO_CODECS[settings.codec][0],
                                'crf': settings.crf, 'gop': settings.gop,
                                'pix_fmt': {c: settings.pix_fmt_for(s) for c, s in layout.cameras.items()},
                                'lossless': False}
                               if settings.is_video else {'codec': 'png', 'lossless': True}),
            'skipped': [f'{p}: {why}' for p, why in skipped],
            'timestamps': ('LeRobot `timestamp` = frame_index / fps; the recorded time stamps are '
                           f'kept exactly in `{SOURCE_TIMESTAMP}`'),
            'off_grid_episodes': exporter.off_grid,
            'dropped': ['HDF5 attributes other than language_command, success, fps, joint/action '
                        'names, robot and the episode file name'],
        }
        exporter.finish({'exported_by': 'vla_ros2 (vla dataset export --format lerobot)',
                         'main_camera': main_camera, 'report': report})
    except BaseException:
        exporter.abort()
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bar.close()
    os.rename(tmp, out)
    return report


# -- import -----------------------------------------------------------------------------------------
def _names(feature: Mapping[str, Any], key: str, width: int) -> list[str]:
    names = feature.get('names')
    if isinstance(names, Mapping):  # e.g. {"motors": [...]} in datasets ported from v1/v2
        names = next(iter(names.values()), None) if len(names) == 1 else None
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        if len(set(names)) == width:
            return list(names)
    return [f'{key.split(".")[-1]}_{i}' for i in range(width)]


def _camera_name(key: str) -> str:
    name = key[len(IMAGES_PREFIX):] if key.startswith(IMAGES_PREFIX) else key.split('.')[-1]
    return re.sub(r'[^A-Za-z0-9_]', '_', name) or 'camera'


@dataclass
class LeRobotLayout:
    """What an import takes from a v3.0 dataset's ``meta/info.json``."""

    root: Path
    info: dict
    fps: float
    state: str
    action: str
    velocity: str | None
    cameras: dict[str, str]  # our camera name -> feature key, main first
    dropped: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, root: Path, main_camera: str | None = None, drop: Sequence[str] = (),
             mapping: Mapping[str, str] | None = None) -> LeRobotLayout:
        info_path = root / INFO_PATH
        if not root.is_dir():
            raise LeRobotFormatError(f'{root}: not a directory (expected a LeRobotDataset v3.0 '
                                     'directory with meta/info.json)')
        if not info_path.is_file():
            legacy = ' (it has meta/info.json missing but looks like a v2 dataset?)' if (
                root / 'meta' / 'episodes.jsonl').exists() else ''
            raise LeRobotFormatError(f'{info_path}: missing; a LeRobotDataset v3.0 directory has '
                                     f'meta/info.json, meta/tasks.parquet, meta/episodes/ and data/{legacy}')
        try:
            info = json.loads(info_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LeRobotFormatError(f'{info_path}: not valid JSON ({exc})') from None
        version = str(info.get('codebase_version', ''))
        if not version.startswith('v3.'):
            raise LeRobotFormatError(f'{info_path}: codebase_version {version!r}; this reader takes '
                                     'v3.x (convert older datasets with LeRobot\'s '
                                     'lerobot.datasets.v30.convert_dataset_v21_to_v30)')
        for key in ('fps', 'features', 'data_path'):
            if key not in info:
                raise LeRobotFormatError(f'{info_path}: no {key!r}')
        features = info['features']
        fps = float(info['fps'])
        if not (math.isfinite(fps) and fps > 0):
            raise LeRobotFormatError(f'{info_path}: fps must be > 0, got {info["fps"]!r}')
        mapping = dict(mapping or {})
        state = mapping.get('state', STATE)
        action = mapping.get('action', ACTION)
        velocity = mapping.get('velocity', VELOCITY)
        drop = set(drop)
        cameras: dict[str, str] = {}
        dropped = []
        for key, ft in features.items():
            if not isinstance(ft, Mapping) or 'dtype' not in ft or 'shape' not in ft:
                raise LeRobotFormatError(f'{info_path}: feature {key!r} has no dtype/shape')
            dtype, shape = ft['dtype'], list(ft['shape'])
            if key in drop:
                dropped.append(key)
                continue
            if dtype in ('video', 'image'):
                if len(shape) != 3 or shape[2] != 3 or (ft.get('info') or {}).get('video.is_depth_map'):
                    raise LeRobotFormatError(
                        f'{info_path}: feature {key!r} ({dtype} {shape}) is not an RGB camera '
                        f'(H, W, 3); drop it with --drop {key}')
                cameras[_camera_name(key)] = key
            elif dtype not in (*NUMERIC_DTYPES, 'string'):
                raise LeRobotFormatError(f'{info_path}: feature {key!r} has dtype {dtype!r}, which '
                                         f'this importer does not know (expected one of '
                                         f'{[*NUMERIC_DTYPES, "string", "image", "video"]}); drop it '
                                         f'with --drop {key}')
            elif key in (state, action, velocity):
                if dtype not in NUMERIC_DTYPES or len(shape) != 1:
                    raise LeRobotFormatError(f'{info_path}: feature {key!r} must be a numeric '
                                             f'vector, got {dtype} {shape}')
            elif key in INDEX_FEATURES or key in (SUCCESS, DONE, SOURCE_TIMESTAMP):
                continue  # kept (success, time stamps) or implied (done = the last frame)
            elif key in DROPPABLE:
                dropped.append(key)
            else:
                raise LeRobotFormatError(
                    f'{info_path}: feature {key!r} ({dtype} {shape}) has no place in an episode '
                    f'(known: {STATE} -> joint positions, {VELOCITY} -> joint velocities, {ACTION} '
                    f'-> actions, {IMAGES_PREFIX}<camera> -> cameras, {SUCCESS}); drop it with '
                    f'--drop {key} or map it with --mapping')
        for role, key in (('state', state), ('action', action)):
            if key not in features:
                raise LeRobotFormatError(f'{info_path}: no {key!r} feature (the {role}); features: '
                                         f'{sorted(features)}; map another one with --mapping')
        if velocity not in features or velocity in drop:
            velocity = None
        elif features[velocity]['shape'] != features[state]['shape']:
            raise LeRobotFormatError(f'{info_path}: {velocity!r} has shape {features[velocity]["shape"]} '
                                     f'but {state!r} {features[state]["shape"]}')
        if not cameras:
            raise LeRobotFormatError(f'{info_path}: no camera feature (dtype video or image with '
                                     'shape (H, W, 3)); an episode needs at least one image stream')
        if main_camera is None:
            meta = root / EXPORT_META_PATH
            if meta.is_file():
                main_camera = json.loads(meta.read_text()).get('main_camera')
            main_camera = main_camera if main_camera in cameras else next(
                (c for c in MAIN_CAMERA_PREFERENCE if c in cameras), next(iter(cameras)))
        if main_camera not in cameras:
            raise LeRobotFormatError(f'{root}: no camera {main_camera!r}; it has {list(cameras)}')
        ordered = {main_camera: cameras[main_camera], **{c: k for c, k in cameras.items() if c != main_camera}}
        return cls(root, info, fps, state, action, velocity, ordered, dropped)

    @property
    def features(self) -> dict:
        return self.info['features']

    def is_video(self, key: str) -> bool:
        return self.features[key]['dtype'] == 'video'


def _read_tasks(root: Path) -> dict[int, str]:
    table = _read_parquet(root / TASKS_PATH)
    columns = table.column_names
    text = next((c for c in ('task', '__index_level_0__') if c in columns), None)
    if text is None:
        text = next((c for c in columns if str(table.schema.field(c).type) in ('string', 'large_string')), None)
    if 'task_index' not in columns or text is None:
        raise LeRobotFormatError(f'{root / TASKS_PATH}: expected a task_index column and the task '
                                 f'strings, got columns {columns}')
    return dict(zip(table.column('task_index').to_pylist(), table.column(text).to_pylist()))


def _read_episodes(layout: LeRobotLayout) -> list[dict]:
    directory = layout.root / 'meta' / 'episodes'
    files = sorted(directory.glob('*/*.parquet'))
    if not files:
        raise LeRobotFormatError(f'{directory}: no episodes table (meta/episodes/chunk-*/file-*.parquet)')
    needed = ['episode_index', 'length', 'dataset_from_index', 'dataset_to_index',
              'data/chunk_index', 'data/file_index']
    for key in layout.cameras.values():
        if layout.is_video(key):
            needed += [f'videos/{key}/chunk_index', f'videos/{key}/file_index',
                       f'videos/{key}/from_timestamp']
    rows = []
    for path in files:
        table = _read_parquet(path)
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise LeRobotFormatError(f'{path}: missing column(s) {missing}')
        keep = [c for c in table.column_names if not c.startswith('stats/')]
        rows += table.select(keep).to_pylist()
    return sorted(rows, key=lambda r: r['episode_index'])


class _DataFile:
    """One data parquet file: the small columns read whole, PNG image columns by row group."""

    def __init__(self, path: Path, columns: list[str], image_columns: list[str]):
        pa, pq = _pa()
        self.path = path
        self.table = _read_parquet(path, columns)
        self.image_columns = image_columns
        self._group: tuple[int, Any] | None = None
        if image_columns:
            try:
                self.file = pq.ParquetFile(path)
            except (pa.ArrowException, OSError) as exc:
                raise LeRobotFormatError(f'{path}: not a readable parquet file: {exc}') from None
            sizes = [self.file.metadata.row_group(i).num_rows for i in range(self.file.num_row_groups)]
            self.group_start = np.concatenate([[0], np.cumsum(sizes)])
        self.episode_index = self.table.column('episode_index').to_numpy()

    def rows(self, episode_index: int) -> np.ndarray:
        return np.flatnonzero(self.episode_index == episode_index)

    def image(self, column: str, row: int) -> np.ndarray:
        import cv2
        pa, _ = _pa()
        g = int(np.searchsorted(self.group_start, row, side='right') - 1)
        if self._group is None or self._group[0] != g:
            try:
                self._group = (g, self.file.read_row_group(g, columns=self.image_columns))
            except (pa.ArrowException, OSError) as exc:
                raise LeRobotFormatError(f'{self.path}: row group {g} unreadable ({exc})') from None
        value = self._group[1].column(column)[row - int(self.group_start[g])].as_py()
        data = value.get('bytes') if isinstance(value, dict) else None
        if not data:
            raise LeRobotFormatError(f'{self.path}: {column} row {row} holds no embedded image '
                                     '(images stored as paths are not supported)')
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise LeRobotFormatError(f'{self.path}: {column} row {row}: image bytes do not decode')
        return bgr[..., ::-1]


def import_lerobot(root: Path, out_dir: Path, instruction: str | None = None,
                   main_camera: str | None = None, drop: Sequence[str] = (),
                   mapping: Mapping[str, str] | None = None, progress: bool = True) -> dict:
    """Convert every episode of the LeRobot v3.x dataset ``root`` into episode files in
    ``out_dir``; returns the report.  Dataset-level faults (info.json, features, tables) raise
    :class:`LeRobotFormatError`; an episode whose frames cannot be read is listed in
    ``report['failed']`` and leaves no file."""
    from tqdm import tqdm
    root, out_dir = Path(root), Path(out_dir)
    layout = LeRobotLayout.read(root, main_camera, drop, mapping)
    tasks = _read_tasks(root)
    episodes = _read_episodes(layout)
    features = layout.features
    vector_cols = [layout.state, layout.action] + ([layout.velocity] if layout.velocity else [])
    optional = [c for c in (SUCCESS, SOURCE_TIMESTAMP) if c in features and c not in drop]
    columns = [*vector_cols, *optional, 'timestamp', 'frame_index', 'episode_index', 'task_index']
    image_columns = [k for k in layout.cameras.values() if not layout.is_video(k)]
    state_names = _names(features[layout.state], layout.state, features[layout.state]['shape'][0])
    action_names = _names(features[layout.action], layout.action, features[layout.action]['shape'][0])
    report: dict = {'source': str(root), 'format': f'LeRobotDataset {layout.info["codebase_version"]}',
                    'fps': layout.fps, 'episodes': [], 'failed': [],
                    'features': {'joint_positions': layout.state, 'actions': layout.action,
                                 'joint_velocities': layout.velocity or 'absent: written as zeros',
                                 'images': layout.cameras[next(iter(layout.cameras))],
                                 **{f'images_{c}': k for c, k in list(layout.cameras.items())[1:]}},
                    'dropped_features': layout.dropped, 'resampled': 'nothing (frames kept 1:1)',
                    'notes': []}
    data_files: dict[Path, _DataFile] = {}
    readers: dict[Path, VideoFrameReader] = {}
    data_path = layout.info['data_path']
    video_path = layout.info.get('video_path')
    bar = tqdm(total=sum(int(e['length']) for e in episodes), desc='import lerobot', unit='frame',
               disable=not progress)
    try:
        for ep in episodes:
            path = root / data_path.format(chunk_index=ep['data/chunk_index'],
                                           file_index=ep['data/file_index'])
            try:
                if path not in data_files:
                    data_files.clear()  # one data file in memory at a time
                    data_files[path] = _DataFile(path, columns, image_columns)
                summary = _import_episode(layout, ep, data_files[path], readers, video_path, tasks,
                                          instruction, state_names, action_names, out_dir, report)
                report['episodes'].append(summary)
            except LeRobotFormatError as exc:
                report['failed'].append({'source': f'{root} episode {ep["episode_index"]}',
                                         'error': str(exc)})
            bar.update(int(ep['length']))
    finally:
        bar.close()
        for reader in readers.values():
            reader.close()
    return report


def _import_episode(layout: LeRobotLayout, ep: Mapping[str, Any], data: _DataFile,
                    readers: dict[Path, VideoFrameReader], video_path: str | None,
                    tasks: Mapping[int, str], instruction: str | None, state_names: list[str],
                    action_names: list[str], out_dir: Path, report: dict) -> dict:
    index = int(ep['episode_index'])
    rows = data.rows(index)
    if len(rows) != int(ep['length']):
        raise LeRobotFormatError(f'{data.path}: episode {index} has {len(rows)} rows, the episodes '
                                 f'table says {ep["length"]}')
    if len(rows) == 0:
        raise LeRobotFormatError(f'{data.path}: episode {index} has no frames')
    table = data.table.take(rows)

    def vectors(key: str) -> np.ndarray:
        return np.asarray(table.column(key).to_pylist(), dtype=np.float64).reshape(len(rows), -1)

    q, act = vectors(layout.state), vectors(layout.action)
    dq = vectors(layout.velocity) if layout.velocity else np.zeros_like(q)
    frame_ts = table.column('timestamp').to_numpy().astype(np.float64)
    if SOURCE_TIMESTAMP in table.column_names:
        stamps = table.column(SOURCE_TIMESTAMP).to_numpy().astype(np.float64)
    else:
        stamps = frame_ts.copy()
    if len(stamps) > 1 and np.any(np.diff(stamps) <= 0):
        stamps = np.arange(len(rows)) / layout.fps
        report['notes'].append(f'episode {index}: timestamps not increasing; written as '
                               'frame_index / fps')
    task_index = int(table.column('task_index')[0].as_py())
    task = instruction or tasks.get(task_index) or ''
    if not task:
        raise LeRobotFormatError(f'episode {index}: task_index {task_index} is not in '
                                 f'{layout.root / TASKS_PATH}; give --instruction')
    if len(set(table.column('task_index').to_pylist())) > 1:
        report['notes'].append(f'episode {index}: several tasks; the first ({task!r}) is the '
                               'instruction')
    if 'success' in ep and ep['success'] is not None:
        success, source = bool(ep['success']), 'episodes table'
    elif SUCCESS in table.column_names:
        success, source = bool(np.any(table.column(SUCCESS).to_numpy(zero_copy_only=False))), SUCCESS
    else:
        success, source = True, 'assumed'
    cameras = list(layout.cameras)
    frames = {}
    for camera, key in layout.cameras.items():
        if layout.is_video(key):
            if video_path is None:
                raise LeRobotFormatError(f'{layout.root / INFO_PATH}: {key} is a video but '
                                         'video_path is null')
            path = layout.root / video_path.format(video_key=key, chunk_index=ep[f'videos/{key}/chunk_index'],
                                                   file_index=ep[f'videos/{key}/file_index'])
            if path not in readers:
                readers[path] = VideoFrameReader(path, layout.fps)
            start = float(ep[f'videos/{key}/from_timestamp'])
            frames[camera] = (lambda i, r=readers[path], s=start: r.frame_at(s + frame_ts[i]))
        else:
            frames[camera] = (lambda i, k=key: data.image(k, int(rows[i])))
    shape = tuple(layout.features[layout.cameras[cameras[0]]]['shape'])
    shapes = {c: tuple(layout.features[k]['shape']) for c, k in layout.cameras.items()}
    target = next_episode_path(out_dir)
    writer = EpisodeWriter(target, joint_names=state_names, action_names=action_names,
                           image_shape=shape, fps=layout.fps, language_command=task,
                           robot=str(layout.info.get('robot_type') or 'lerobot'),
                           cameras=cameras[1:], camera_shapes={c: shapes[c] for c in cameras[1:]})
    with writer:  # an exception aborts (deletes) the temporary file
        for i in range(len(rows)):
            images = {}
            for camera in cameras:
                image = frames[camera](i)
                if image.shape != shapes[camera]:
                    raise LeRobotFormatError(f'episode {index} frame {i}: {layout.cameras[camera]} is '
                                             f'{image.shape}, info.json says {shapes[camera]}')
                images[camera] = image
            writer.append(images[cameras[0]], q[i], dq[i], act[i], float(stamps[i]),
                          extra_images={c: images[c] for c in cameras[1:]})
        final = writer.close(success=success, attrs={
            'source': str(layout.root), 'source_format': 'lerobot',
            'source_episode_index': index, 'success_source': source})
    return {'path': str(final), 'source': f'{layout.root} episode {index}', 'steps': len(rows),
            'success': success, 'success_source': source}


def iter_dataset_frames(root: Path, camera_key: str) -> Iterator[np.ndarray]:
    """Every frame of one camera feature, episode by episode (for PSNR checks and benchmarks)."""
    layout = LeRobotLayout.read(Path(root))
    video_path = layout.info.get('video_path')
    episodes = _read_episodes(layout)
    readers: dict[Path, VideoFrameReader] = {}
    try:
        for ep in episodes:
            if layout.is_video(camera_key):
                path = layout.root / video_path.format(
                    video_key=camera_key, chunk_index=ep[f'videos/{camera_key}/chunk_index'],
                    file_index=ep[f'videos/{camera_key}/file_index'])
                if path not in readers:
                    readers[path] = VideoFrameReader(path, layout.fps)
                reader = readers[path]
                start = float(ep[f'videos/{camera_key}/from_timestamp'])
                for i in range(int(ep['length'])):
                    yield reader.frame_at(start + i / layout.fps)
            else:
                path = layout.root / layout.info['data_path'].format(
                    chunk_index=ep['data/chunk_index'], file_index=ep['data/file_index'])
                data = _DataFile(path, ['episode_index'], [camera_key])
                for row in data.rows(int(ep['episode_index'])):
                    yield data.image(camera_key, int(row))
    finally:
        for reader in readers.values():
            reader.close()
