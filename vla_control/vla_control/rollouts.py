"""Recording the controller's rollouts, without ROS: one HDF5 episode per command.

With ``record_dir`` set, ``vla_controller`` writes every acted observation and its predicted
action to an episode of the collector's format (:mod:`vla_collect.episode_io`), named like the
collector's episodes: ``episode_NNNNNN.hdf5`` after the highest number in use
(:func:`~vla_collect.episode_io.next_episode_path`), so a deleted rollout never makes a later
one collide with a kept one, and a record directory reads as a dataset.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


class RolloutRecorder:
    """The episodes of one controller: :meth:`start` at each new command, :meth:`record` on
    every acted tick (the file is opened on the first, when the image sizes are known),
    :meth:`close` when the command ends or the node stops.

    ``ee_action_names``: the policy outputs end-effector actions; each frame then records the
    joint targets they became (``/actions``) and the policy's action (``/actions_ee``).

    ``directory`` '' (or None) records nothing.  Errors of the episode writer (``OSError``,
    ``ValueError``) propagate; the caller reports them and calls :meth:`close`, which stops
    the recording until the next :meth:`start`.
    """

    def __init__(self, directory: str | Path | None, joint_names: Sequence[str], fps: float,
                 cameras: Sequence[str] = (), ee_action_names: Sequence[str] | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self.ee_action_names = list(ee_action_names) if ee_action_names else None
        self.joint_names = list(joint_names)
        self.fps = float(fps)
        self.cameras = list(cameras)
        self.instruction: str | None = None  # the command being recorded, None = not recording
        self.writer = None  # EpisodeWriter of the current command's run, once opened

    @property
    def path(self) -> Path | None:
        """The episode being written (its final name), or None."""
        return None if self.writer is None else self.writer.path

    def start(self, instruction: str) -> None:
        """A new command: finish the previous episode (see :meth:`close`) and record the next
        acted frames under ``instruction`` (nothing without a directory or instruction)."""
        self.close()
        if self.directory is not None and instruction:
            self.instruction = instruction

    def record(self, image: np.ndarray, extra: Mapping[str, np.ndarray], q: np.ndarray,
               v: np.ndarray | None, action: np.ndarray, timestamp: float,
               action_ee: np.ndarray | None = None) -> Path | None:
        """Append one acted frame (``extra``: ``image_<camera>`` -> image; ``action_ee``: the
        end-effector action of which ``action`` holds the joint targets); returns the path
        of a file opened by this call (to announce it), else None."""
        if self.instruction is None:
            return None
        opened = None
        if self.writer is None:
            from vla_collect.episode_io import EpisodeWriter, next_episode_path
            opened = next_episode_path(self.directory)
            self.writer = EpisodeWriter(
                opened, joint_names=self.joint_names, action_names=self.joint_names,
                image_shape=image.shape, fps=self.fps, language_command=self.instruction,
                robot='vla_controller', cameras=self.cameras,
                camera_shapes={c: extra[f'image_{c}'].shape for c in self.cameras},
                ee_action_names=self.ee_action_names)
        self.writer.append(image, q, v, action, timestamp=timestamp, action_ee=action_ee,
                           extra_images={c: extra[f'image_{c}'] for c in self.cameras})
        return opened

    def close(self) -> None:
        """Finish the current episode (kept as a failed rollout when it has frames, deleted
        when empty) and stop recording until the next :meth:`start`.  Raises what the writer
        raises on closing (``OSError``, ``ValueError``); the recording is stopped anyway."""
        writer, self.writer, self.instruction = self.writer, None, None
        if writer is None:
            return
        if writer.length:
            writer.close(success=False, attrs={'source': 'vla_controller rollout'})
        else:
            writer.abort()

    def record_or_stop(self, image: np.ndarray, extra: Mapping[str, np.ndarray], q: np.ndarray,
                       v: np.ndarray | None, action: np.ndarray, timestamp: float,
                       action_ee: np.ndarray | None = None) -> tuple[Path | None, str]:
        """:meth:`record` for a caller that must keep running: (path of a file opened by this
        call or None, '') or, on a writer error, (None, why) with the recording stopped until
        the next :meth:`start` (the episode finished as :meth:`close` does)."""
        try:
            return self.record(image, extra, q, v, action, timestamp, action_ee), ''
        except (OSError, ValueError) as exc:
            error = f'recording stopped: {exc}'
            problem = self.close_or_report()
            return None, error + (f'; {problem}' if problem else '')

    def close_or_report(self) -> str:
        """:meth:`close`, returning why finishing the episode failed ('' = it did not)."""
        try:
            self.close()
        except (OSError, ValueError) as exc:
            return f'could not finish the recording: {exc}'
        return ''
