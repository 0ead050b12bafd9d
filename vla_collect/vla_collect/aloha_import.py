"""ALOHA / ACT HDF5 episodes -> this suite's HDF5 episodes.

The ALOHA layout (one file per episode, as written by ACT's ``record_episodes.py`` and its
simulated tasks)::

    /observations/qpos              (T, N) float  joint positions
    /observations/qvel              (T, N) float  joint velocities (optional: zeros if absent)
    /observations/images/<camera>   (T, H, W, 3) uint8  one dataset per camera
    /action                         (T, A) float  commanded joint positions
    attrs: sim (bool, optional)

ALOHA stores neither an instruction nor a success flag: the instruction comes from the command
line (or a YAML mapping ``{file name: instruction}``), and a demonstration is taken as a success
unless told otherwise.  Arrays are copied unchanged (lossless); the overhead camera (``top`` or
``cam_high``, else the first, or the one named) becomes the main image, the others extra cameras.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from vla_collect.episode_schema import next_episode_path
from vla_collect.episode_writer import EpisodeWriter

#: ALOHA's bimanual joint order (two 6-DoF ViperX arms with grippers)
ALOHA_JOINT_NAMES = [f'{side}_{joint}' for side in ('left', 'right') for joint in
                     ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate',
                      'gripper')]
ALOHA_FPS = 50.0  # ACT records at 50 Hz
#: the overhead view is the main image when present (ACT's sim tasks: 'top'; real ALOHA: 'cam_high')
MAIN_CAMERA_PREFERENCE = ('top', 'cam_high', 'front')


class AlohaImportError(ValueError):
    """A file that is not a usable ALOHA episode; the message names the file and the dataset."""


def _names(width: int) -> list[str]:
    return list(ALOHA_JOINT_NAMES) if width == len(ALOHA_JOINT_NAMES) else [
        f'joint_{i}' for i in range(width)]


def _camera_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def read_layout(f: h5py.File, path: Path) -> tuple[list[str], int]:
    """The camera names and the step count of an ALOHA file, or an error naming what is wrong."""
    for key in ('observations/qpos', 'action', 'observations/images'):
        if key not in f:
            raise AlohaImportError(f'{path}: no /{key}; an ALOHA episode has /observations/qpos, '
                                   '/observations/images/<camera> and /action')
    cameras = [k for k in f['observations/images'] if isinstance(f['observations/images'][k], h5py.Dataset)]
    if not cameras:
        raise AlohaImportError(f'{path}: /observations/images holds no camera dataset')
    steps = f['observations/qpos'].shape[0]
    checks = {'/action': f['action'].shape[0],
              **{f'/observations/images/{c}': f['observations/images'][c].shape[0] for c in cameras}}
    if 'observations/qvel' in f:
        checks['/observations/qvel'] = f['observations/qvel'].shape[0]
    bad = {k: v for k, v in checks.items() if v != steps}
    if bad:
        raise AlohaImportError(f'{path}: /observations/qpos has {steps} steps but {bad}')
    for c in cameras:
        shape = f['observations/images'][c].shape
        if len(shape) != 4 or shape[-1] != 3:
            raise AlohaImportError(f'{path}: /observations/images/{c} is {shape}, expected '
                                   '(T, H, W, 3) uint8 RGB')
    return cameras, steps


def import_aloha_file(path: Path, out_dir: Path, instruction: str, fps: float = ALOHA_FPS,
                      main_camera: str | None = None, success: bool | None = None,
                      joint_names: Sequence[str] | None = None) -> dict:
    """Convert one ALOHA episode; returns what was written.  Nothing stays under a final name
    when the source turns out to be unreadable half-way (a truncated file)."""
    try:
        f = h5py.File(path, 'r')
    except OSError as exc:
        raise AlohaImportError(f'{path}: cannot open as HDF5 ({exc}); a truncated or '
                               'not-HDF5 file') from None
    with f:
        cameras, steps = read_layout(f, path)
        if steps == 0:
            raise AlohaImportError(f'{path}: the episode has no steps')
        main = main_camera or next((c for c in MAIN_CAMERA_PREFERENCE if c in cameras), cameras[0])
        if main not in cameras:
            raise AlohaImportError(f'{path}: camera {main!r} not found; it has {cameras}')
        extra = [c for c in cameras if c != main]
        qpos, action = f['observations/qpos'], f['action']
        names = list(joint_names) if joint_names else _names(qpos.shape[1])
        if len(names) != qpos.shape[1]:
            raise AlohaImportError(f'{path}: {len(names)} joint names for {qpos.shape[1]} joints')
        action_names = names if action.shape[1] == qpos.shape[1] else _names(action.shape[1])
        images = f['observations/images']
        qvel = f['observations/qvel'] if 'observations/qvel' in f else None
        success_source = 'given' if success is not None else (
            'file' if 'success' in f.attrs else 'assumed')
        if success is None:
            success = bool(f.attrs.get('success', True))
        target = next_episode_path(out_dir)
        writer = EpisodeWriter(
            target, joint_names=names, action_names=action_names,
            image_shape=images[main].shape[1:], fps=fps, language_command=instruction,
            robot='aloha', cameras=[_camera_name(c) for c in extra],
            camera_shapes={_camera_name(c): images[c].shape[1:] for c in extra})
        with writer:  # an exception aborts (deletes) the temporary file
            try:
                for t in range(steps):
                    writer.append(images[main][t], qpos[t],
                                  qvel[t] if qvel is not None else np.zeros(len(names)), action[t],
                                  timestamp=t / fps,
                                  extra_images={_camera_name(c): images[c][t] for c in extra})
            except OSError as exc:
                raise AlohaImportError(f'{path}: reading step {t} failed ({exc}); a truncated '
                                       'file? nothing was written for it') from None
            final = writer.close(success=success, attrs={
                'source': str(path), 'source_format': 'aloha',
                'success_source': success_source,
                'source_cameras': ','.join(cameras)})
    return {'path': str(final), 'source': str(path), 'steps': steps, 'cameras': cameras}


def import_aloha(sources: Sequence[Path], out_dir: Path, instruction: str | None,
                 instructions: Mapping[str, str] | None = None, fps: float = ALOHA_FPS,
                 main_camera: str | None = None, progress: bool = True) -> dict:
    """Convert ALOHA files (or directories of them); per-file errors are collected, not fatal."""
    from tqdm import tqdm
    files: list[Path] = []
    for source in sources:
        found = sorted(source.glob('*.hdf5')) + sorted(source.glob('*.h5')) if source.is_dir() else [source]
        if not found:
            raise AlohaImportError(f'{source}: no .hdf5 or .h5 files')
        files += found
    report: dict = {'source': [str(s) for s in sources], 'episodes': [], 'failed': []}
    for path in tqdm(files, desc='import aloha', unit='episode', disable=not progress):
        text = (instructions or {}).get(path.name) or instruction
        if not text:
            report['failed'].append({'source': str(path), 'error': 'no instruction: give '
                                     '--instruction TEXT or map the file name in --mapping'})
            continue
        try:
            report['episodes'].append(import_aloha_file(path, out_dir, text, fps, main_camera))
        except AlohaImportError as exc:
            report['failed'].append({'source': str(path), 'error': str(exc)})
    return report
