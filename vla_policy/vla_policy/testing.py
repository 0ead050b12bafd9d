"""Helpers for other packages' tests: a real (random-initialised, tiny) checkpoint in a blink."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

DEFAULT_JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


def make_tiny_checkpoint(out_dir: str | Path, joint_names: Sequence[str] = DEFAULT_JOINTS,
                         action_names: Sequence[str] | None = None, image_size: int = 64, seed: int = 0,
                         action_mean: Sequence[float] | None = None, action_std: float = 0.05,
                         **config_overrides) -> Path:
    """Write a checkpoint of the ``tiny`` preset (random weights) to ``out_dir`` and return it.

    Actions come out around ``action_mean`` (default zeros) with spread ~``action_std``, so a
    test can predict the range of what the policy commands. The model reads ``image_size``
    square images; any other size is resized by ``select_action``.
    """
    from vla_policy.config import preset
    from vla_policy.policy import VLAPolicy
    joint_names = list(joint_names)
    action_names = list(action_names) if action_names is not None else list(joint_names)
    n, a = len(joint_names), len(action_names)
    cfg = preset('tiny', joint_names=joint_names, action_names=action_names, state_dim=n, action_dim=a,
                 image_size=image_size, source_image_size=[image_size, image_size], **config_overrides)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = VLAPolicy(cfg)
    mean = np.zeros(a) if action_mean is None else np.asarray(action_mean, dtype=np.float64)
    policy.set_normalization({'state': {'mean': np.zeros(n), 'std': np.ones(n)},
                              'action': {'mean': mean, 'std': np.full(a, action_std)}},
                             instructions=['pick up the red cube', 'pick up the blue cube'])
    return policy.save_pretrained(out_dir, metadata={'step': 0, 'note': 'random tiny checkpoint for tests'})


def write_tiny_dataset(directory: str | Path, episodes: int = 3, steps: int = 20, image_size: int = 32,
                       joint_names: Sequence[str] = DEFAULT_JOINTS, action_names: Sequence[str] | None = None,
                       instructions: Sequence[str] = ('pick up the red cube', 'pick up the blue cube'),
                       fps: float = 30.0, seed: int = 0, first_index: int = 0,
                       cameras: Sequence[str] = (), binary_actions: Sequence[int] = ()) -> list[Path]:
    """Write ``episodes`` small, learnable episodes with :class:`vla_collect.episode_io.EpisodeWriter`.

    Actions are smooth functions of time and of the instruction, the joint positions lag the
    actions, and each image shows a bar whose position encodes the step, so a policy can fit
    them. Each extra camera of ``cameras`` shows the bar mirrored. The action dimensions of
    ``binary_actions`` are two-valued (+/-1, the sign of the smooth function, like a gripper
    effort). Returns the episode paths.
    """
    from vla_collect.episode_io import EpisodeWriter
    rng = np.random.default_rng(seed)
    joint_names = list(joint_names)
    action_names = list(action_names) if action_names is not None else joint_names
    n, a = len(joint_names), len(action_names)
    paths = []
    for e in range(episodes):
        path = Path(directory) / f'episode_{first_index + e:06d}.hdf5'
        text = instructions[e % len(instructions)]
        sign = 1.0 if e % len(instructions) == 0 else -1.0
        phase = rng.uniform(0, 0.3)
        writer = EpisodeWriter(path, joint_names=joint_names, action_names=action_names,
                               image_shape=(image_size, image_size, 3), fps=fps, language_command=text,
                               cameras=list(cameras))
        with writer:
            for t in range(steps):
                s = t / max(1, steps - 1)
                action = sign * np.sin(np.linspace(0.5, 2.0, a) * (s + phase) * np.pi).astype(np.float32)
                for d in binary_actions:
                    action[d] = 1.0 if action[d] >= 0 else -1.0
                q = np.resize(action, n) * 0.9
                image = np.full((image_size, image_size, 3), 40, np.uint8)
                col = int(s * (image_size - 4))
                image[:, col:col + 4, 0] = 220
                image[:, :, 2] = 200 if sign > 0 else 40
                writer.append(image, q, np.zeros(n), action, timestamp=t / fps,
                              extra_images={c: np.ascontiguousarray(image[:, ::-1]) for c in cameras})
            writer.close(success=True)
        paths.append(path)
    return paths
