"""LeRobotDataset v3.0: the layout, names and statistics that export and import share.

``vla dataset export|import --format lerobot`` converts between it and this suite's episodes.

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

Export writes to ``OUT.tmp-<pid>`` and renames it to ``OUT`` at the end; import writes each
episode under a temporary name, renamed when complete.

This module holds the layout's names and constants, the parquet helpers and the statistics
(``meta/stats.json``); :mod:`vla_collect.lerobot_export` writes a dataset,
:mod:`vla_collect.lerobot_reader` reads one's tables, :mod:`vla_collect.lerobot_import` turns it
into episodes and :mod:`vla_collect.lerobot_video` encodes and decodes the camera videos.
No ROS import here.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

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


def arrow():
    """(pyarrow, pyarrow.parquet), imported when first needed."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


def fps_value(fps: float) -> int | float:
    """fps as info.json writes it (an int when whole)."""
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


def jsonable(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    """Statistics as nested lists for stats.json."""
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


# -- parquet helpers ---------------------------------------------------------------------------------
def tasks_table(tasks: Sequence[str]):
    """meta/tasks.parquet as pandas writes ``DataFrame({'task_index': ...}, index=tasks)``
    (LeRobot reads it with ``pd.read_parquet``: the task strings must come back as the index)."""
    pa, _ = arrow()
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


def fixed_list(rows: np.ndarray, dtype):
    """A (T, D) array as an arrow fixed-size-list column."""
    pa, _ = arrow()
    rows = np.ascontiguousarray(rows)
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1), dtype), rows.shape[1])


def read_parquet(path: Path, columns: Sequence[str] | None = None):
    """A parquet table, or LeRobotFormatError naming the missing or unreadable file."""
    pa, pq = arrow()
    if not path.is_file():
        raise LeRobotFormatError(f'{path}: missing (the dataset\'s meta/info.json or episodes table '
                                 'points to it)')
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as exc:
        raise LeRobotFormatError(f'{path}: not a readable parquet file (truncated or corrupt?): '
                                 f'{exc}') from None
