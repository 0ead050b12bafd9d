"""A LeRobotDataset v3.x -> episode files (``vla dataset import --format lerobot``).

Each episode is written through :class:`~vla_collect.episode_writer.EpisodeWriter` (temporary
name, renamed when complete); an episode whose frames cannot be read is reported and leaves no
file.  No ROS import here.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vla_collect.episode_schema import next_episode_path
from vla_collect.episode_writer import EpisodeWriter
from vla_collect.lerobot_meta import INFO_PATH, SOURCE_TIMESTAMP, SUCCESS, TASKS_PATH, LeRobotFormatError
from vla_collect.lerobot_reader import (DataFile, LeRobotLayout, feature_names, read_episodes,
                                        read_tasks)
from vla_collect.lerobot_video import VideoFrameReader

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
    tasks = read_tasks(root)
    episodes = read_episodes(layout)
    features = layout.features
    vector_cols = [layout.state, layout.action] + ([layout.velocity] if layout.velocity else [])
    optional = [c for c in (SUCCESS, SOURCE_TIMESTAMP) if c in features and c not in drop]
    columns = [*vector_cols, *optional, 'timestamp', 'frame_index', 'episode_index', 'task_index']
    image_columns = [k for k in layout.cameras.values() if not layout.is_video(k)]
    state_names = feature_names(features[layout.state], layout.state, features[layout.state]['shape'][0])
    action_names = feature_names(features[layout.action], layout.action, features[layout.action]['shape'][0])
    report: dict = {'source': str(root), 'format': f'LeRobotDataset {layout.info["codebase_version"]}',
                    'fps': layout.fps, 'episodes': [], 'failed': [],
                    'features': {'joint_positions': layout.state, 'actions': layout.action,
                                 'joint_velocities': layout.velocity or 'absent: written as zeros',
                                 'images': layout.cameras[next(iter(layout.cameras))],
                                 **{f'images_{c}': k for c, k in list(layout.cameras.items())[1:]}},
                    'dropped_features': layout.dropped, 'resampled': 'nothing (frames kept 1:1)',
                    'notes': []}
    data_files: dict[Path, DataFile] = {}
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
                    data_files[path] = DataFile(path, columns, image_columns)
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


def _import_episode(layout: LeRobotLayout, ep: Mapping[str, Any], data: DataFile,
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
    episodes = read_episodes(layout)
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
                data = DataFile(path, ['episode_index'], [camera_key])
                for row in data.rows(int(ep['episode_index'])):
                    yield data.image(camera_key, int(row))
    finally:
        for reader in readers.values():
            reader.close()
