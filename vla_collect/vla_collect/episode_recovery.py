"""Salvaging an interrupted recording (``episode_*.hdf5.tmp``) into a final episode.

``vla dataset recover`` calls :func:`recover_episode`.  No ROS import here.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vla_collect.episode_schema import (ACTIONS, IMAGES, JOINT_POSITIONS, JOINT_VELOCITIES,
                                        REQUIRED_ATTRS, TIMESTAMPS, TMP_SUFFIX, EpisodeFormatError,
                                        attr_value, camera_dataset, first_bad_row, open_h5,
                                        schema_problems)
from vla_collect.episode_writer import EpisodeWriter, now_iso

log = logging.getLogger(__name__)


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
        src = open_h5(tmp_path, swmr=True)
    except EpisodeFormatError:
        raise
    except OSError as exc:
        raise EpisodeFormatError(f'{tmp_path}: cannot be opened for recovery ({exc})') from exc
    with src:
        problems = [p for p in schema_problems(src)
                    if not p.startswith(('datasets differ', 'attrs["duration"]', 'the episode has no'))]
        if problems:
            raise EpisodeFormatError(f'{tmp_path}: cannot recover: ' + '; '.join(problems))
        attrs = {k: attr_value(v) for k, v in src.attrs.items()}
        cameras = list(attrs.get('cameras') or [])
        image_names = [IMAGES] + [camera_dataset(c) for c in cameras]
        names = image_names + [JOINT_POSITIONS, JOINT_VELOCITIES, ACTIONS, TIMESTAMPS]
        steps = min(src[n].shape[0] for n in names)
        t = src[TIMESTAMPS][:steps]
        complete = np.isfinite(t)
        steps = int(np.argmin(complete)) if not complete.all() else steps
        rows = {n: src[n][:steps] for n in (JOINT_POSITIONS, JOINT_VELOCITIES, ACTIONS)}
        for n, data in rows.items():  # keep only fully finite leading steps
            bad = first_bad_row(data)
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
            created=str(attrs.get('created') or now_iso()), flush_every=256)
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
