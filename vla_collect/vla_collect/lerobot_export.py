"""Episode files -> one LeRobotDataset v3.0 (``vla dataset export --format lerobot``).

Streamed (memory does not grow with the recording) into ``OUT.tmp-<pid>``, renamed to ``OUT``
at the end; the layout is described in :mod:`vla_collect.lerobot_meta`.  No ROS import here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_collect.episode_reader import load_valid_episodes, open_episode
from vla_collect.lerobot_meta import (ACTION, CHUNKS_SIZE, CODEBASE_VERSION, DATA_FILE_MB, DATA_PATH,
                                      DEFAULT_FEATURES, DONE, EPISODES_PATH, EXPORT_META_PATH,
                                      IMAGE_STATS_FRAMES, IMAGES_PREFIX, INFO_PATH, SOURCE_TIMESTAMP,
                                      STATE, STATS_PATH, SUCCESS, TASKS_PATH, VELOCITY,
                                      VIDEO_CODECS, VIDEO_FILE_MB, VIDEO_PATH, ImageStats,
                                      LeRobotFormatError, aggregate_stats, arrow, fixed_list,
                                      fps_value, jsonable, tasks_table, vector_stats)
from vla_collect.lerobot_video import VideoFileWriter, VideoSettings

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
                              'video.fps': fps_value(self.fps), 'video.channels': 3,
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
    pa, _ = arrow()
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
        pa, _ = arrow()
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
        _, pq = arrow()
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
        pa, _ = arrow()
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
                columns = [fixed_list(q[rows], pa.float32()), fixed_list(dq[rows], pa.float32()),
                           fixed_list(act[rows], pa.float32())]
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
        pa, pq = arrow()
        if self.data_writer is not None:
            self.data_writer.close()
        for writer in self.video_writers.values():
            writer.close()
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), path, compression='snappy')
        tasks = sorted(self.tasks, key=self.tasks.get)
        pq.write_table(tasks_table(tasks), self.root / TASKS_PATH)
        info = {
            'codebase_version': CODEBASE_VERSION, 'robot_type': self.robot_type,
            'total_episodes': len(self.episodes), 'total_frames': self.frames,
            'total_tasks': len(tasks), 'chunks_size': CHUNKS_SIZE,
            'data_files_size_in_mb': DATA_FILE_MB, 'video_files_size_in_mb': VIDEO_FILE_MB,
            'fps': fps_value(self.layout.fps), 'splits': {'train': f'0:{len(self.episodes)}'},
            'data_path': DATA_PATH, 'video_path': VIDEO_PATH if self.settings.is_video else None,
            'features': self.features}
        (self.root / INFO_PATH).write_text(json.dumps(info, indent=4, ensure_ascii=False))
        (self.root / STATS_PATH).write_text(json.dumps(jsonable(aggregate_stats(self.episode_stats)),
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
