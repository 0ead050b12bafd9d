"""Reading a LeRobotDataset v3.x: its features (``meta/info.json``), tasks, episodes table and
data files, with a clear error naming the file or feature that does not fit.
:mod:`vla_collect.lerobot_import` turns what is read here into episodes.  No ROS import here.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_collect.lerobot_meta import (ACTION, DONE, DROPPABLE, EXPORT_META_PATH, IMAGES_PREFIX,
                                      INDEX_FEATURES, INFO_PATH, MAIN_CAMERA_PREFERENCE,
                                      NUMERIC_DTYPES, SOURCE_TIMESTAMP, STATE, SUCCESS, TASKS_PATH,
                                      VELOCITY, LeRobotFormatError, arrow, read_parquet)

def feature_names(feature: Mapping[str, Any], key: str, width: int) -> list[str]:
    """The dimension names of a vector feature (made up as <key>_<i> when absent or unusable)."""
    names = feature.get('names')
    if isinstance(names, Mapping):  # e.g. {"motors": [...]} in datasets ported from v1/v2
        names = next(iter(names.values()), None) if len(names) == 1 else None
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        if len(set(names)) == width:
            return list(names)
    return [f'{key.split(".")[-1]}_{i}' for i in range(width)]


def camera_name(key: str) -> str:
    """An episode camera name for a feature key (``observation.images.front`` -> ``front``)."""
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
                cameras[camera_name(key)] = key
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


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task string, from meta/tasks.parquet."""
    table = read_parquet(root / TASKS_PATH)
    columns = table.column_names
    text = next((c for c in ('task', '__index_level_0__') if c in columns), None)
    if text is None:
        text = next((c for c in columns if str(table.schema.field(c).type) in ('string', 'large_string')), None)
    if 'task_index' not in columns or text is None:
        raise LeRobotFormatError(f'{root / TASKS_PATH}: expected a task_index column and the task '
                                 f'strings, got columns {columns}')
    return dict(zip(table.column('task_index').to_pylist(), table.column(text).to_pylist()))


def read_episodes(layout: LeRobotLayout) -> list[dict]:
    """The episodes table's rows (without the per-episode stats), in episode order."""
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
        table = read_parquet(path)
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise LeRobotFormatError(f'{path}: missing column(s) {missing}')
        keep = [c for c in table.column_names if not c.startswith('stats/')]
        rows += table.select(keep).to_pylist()
    return sorted(rows, key=lambda r: r['episode_index'])


class DataFile:
    """One data parquet file: the small columns read whole, PNG image columns by row group."""

    def __init__(self, path: Path, columns: list[str], image_columns: list[str]):
        pa, pq = arrow()
        self.path = path
        self.table = read_parquet(path, columns)
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
        pa, _ = arrow()
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
