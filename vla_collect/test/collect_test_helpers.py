"""Helpers for vla_collect's tests: small real episode files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_collect.episode_io import EpisodeWriter

JOINTS = ['shoulder', 'elbow', 'wrist']
ACTIONS = ['shoulder', 'elbow', 'wrist', 'gripper']
IMAGE_SHAPE = (24, 32, 3)


def frame(i: int, shape=IMAGE_SHAPE) -> np.ndarray:
    """A deterministic, compressible test image for step ``i``."""
    h, w, _ = shape
    img = np.zeros(shape, dtype=np.uint8)
    img[..., 0] = (np.arange(w)[None, :] * 4 + i) % 256
    img[..., 1] = (np.arange(h)[:, None] * 8) % 256
    img[..., 2] = i % 256
    return img


def write_episode(path: Path, steps: int = 6, success: bool = True, command: str = 'pick it',
                  **kwargs) -> Path:
    """A complete small episode (3 joints, 4 actions, 24x32 images)."""
    with EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE,
                       fps=30.0, language_command=command, **kwargs) as writer:
        for i in range(steps):
            writer.append(frame(i), [0.1 * i, 0.2, 0.3], [0.0, 0.1, -0.1],
                          [0.1 * i, 0.2, 0.3, 0.04], timestamp=i / 30.0)
        return writer.close(success=success)

