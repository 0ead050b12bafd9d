"""Behavioural-cloning samples from a directory of HDF5 episodes (DESIGN.md schema).

Every time step of every episode is a sample: the history of ``n_obs_steps`` frames ending at
the step (repeat-padded before the episode start) and the chunk of ``chunk_size`` actions
starting at it (padded with the last action after the episode end, ``action_is_pad`` marks
the padding). Images are read lazily with one file handle per worker process, so datasets
larger than RAM work; small per-step vectors (joint positions, actions) are held in memory.
Optionally the frames, resized to the model's input size, are cached in RAM when they fit a
budget (``cache_images``), which saves re-decoding full-size frames every epoch.

Nothing here depends on the simulator: dimensions, image size and instructions come from the
files.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vla_common.files import atomic_write_json
from vla_policy.images import prepare_image


class DataError(ValueError):
    """The episode directory cannot be trained on; the message names the file and the fault."""


@dataclass
class EpisodeRecord:
    path: Path
    length: int
    instruction: str
    success: bool
    image_shape: tuple[int, int, int]
    cameras: tuple[str, ...] = ()  # extra cameras recorded in this episode


@dataclass
class DatasetInfo:
    """What the trainer learns about a data directory without reading any image."""

    directory: Path
    episodes: list[EpisodeRecord]
    joint_names: list[str]
    action_names: list[str]
    image_shape: tuple[int, int, int]
    fps: float
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    action_space: str = 'joint'  # which recorded actions are learnt: 'joint' /actions, 'ee_delta' /actions_ee

    @property
    def cameras(self) -> list[str]:
        """Extra cameras (``images_<name>``) recorded in every episode, in recording order."""
        common = set.intersection(*(set(e.cameras) for e in self.episodes)) if self.episodes else set()
        return [c for c in self.episodes[0].cameras if c in common] if self.episodes else []

    @property
    def state_dim(self) -> int:
        return len(self.joint_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def instructions(self) -> list[str]:
        return sorted({e.instruction for e in self.episodes})

    @property
    def num_steps(self) -> int:
        return sum(e.length for e in self.episodes)

    def fingerprint(self, ids: list[int] | None = None) -> str:
        """Hash of file names, sizes and lengths of the episodes ``ids`` (default all)."""
        ids = range(len(self.episodes)) if ids is None else ids
        items = [(self.episodes[i].path.name, self.episodes[i].path.stat().st_size, self.episodes[i].length)
                 for i in ids]
        if self.action_space != 'joint':  # other actions, other statistics
            items.append(self.action_space)
        return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:16]


def scan_episodes(directory: str | Path, skip_invalid: bool = False, include_failed: bool = False,
                  action_space: str = 'joint') -> DatasetInfo:
    """Validate a directory of episodes and check they agree on dimensions.

    ``action_space='ee_delta'``: the actions to learn are the end-effector ones (``/actions_ee``)
    of episodes recorded with ``vla collect --action-mode ee_delta``.

    Raises :class:`DataError` for a missing/empty directory, invalid files (unless
    ``skip_invalid``), or episodes whose joint/action names, image shape or fps disagree.
    Unsuccessful episodes are left out unless ``include_failed``.
    """
    from vla_collect.episode_io import EpisodeFormatError, list_episodes, load_valid_episodes, open_episode
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f'data directory {directory} does not exist (expected a directory of episode_*.hdf5 '
                        'files, e.g. from `vla collect`)')
    if not list_episodes(directory):
        raise DataError(f'no episode_*.hdf5 files in {directory}; record demonstrations first (`vla collect`)')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        valid, skipped = load_valid_episodes(directory, check_images='last')
    if skipped and not skip_invalid:
        lines = '\n'.join(f'  {p}: {why}' for p, why in skipped)
        raise DataError(f'{len(skipped)} invalid episode file(s) in {directory}:\n{lines}\n'
                        'fix or remove them, or pass --skip-invalid to train on the others')
    records: list[EpisodeRecord] = []
    ref: tuple | None = None
    ref_path: Path | None = None
    failed = 0
    for path in valid:
        try:
            ep = open_episode(path, action_space)
        except EpisodeFormatError as exc:
            raise DataError(str(exc)) from exc
        with ep:
            meta = (ep.joint_names, ep.action_names, tuple(ep.images.shape[1:]), ep.fps)
            if ref is None:
                ref, ref_path = meta, path
            else:
                for i, what in enumerate(('joint_names', 'action_names', 'image shape (H, W, 3)', 'fps')):
                    if meta[i] != ref[i]:
                        raise DataError(f'{path}: {what} {meta[i]} disagrees with {ref[i]} of {ref_path}; '
                                        'all episodes of a dataset must come from the same robot setup')
            if not ep.success and not include_failed:
                failed += 1
                continue
            if not ep.language_command.strip():
                raise DataError(f'{path}: empty language_command; every episode needs its instruction')
            records.append(EpisodeRecord(path, len(ep), ep.language_command, ep.success,
                                         tuple(ep.images.shape[1:]), tuple(ep.cameras)))
    if not records:
        why = f' ({failed} unsuccessful episodes left out; pass --include-failed to use them)' if failed else ''
        raise DataError(f'no usable episodes in {directory}{why}')
    assert ref is not None
    return DatasetInfo(directory, records, list(ref[0]), list(ref[1]), tuple(ref[2]), float(ref[3]),
                       skipped=list(skipped), action_space=action_space)


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train/validation split by episode (never by step); at least one training episode."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = min(int(round(n * val_fraction)), n - 1)
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


# -- normalization statistics --------------------------------------------------------------------
#: an action dimension taking at most this many distinct values is reported by its levels
MAX_LEVELS = 2


def compute_stats(info: DatasetInfo, ids: list[int]) -> dict[str, Any]:
    """Mean/std (float64 accumulation) of joint positions and actions over episodes ``ids``, and
    ``action.levels``: per action dimension, its two values when it only ever takes two (a binary
    gripper command such as +/-1 effort), else None.

    Raises :class:`DataError` naming the episode and step of a non-finite value.
    """
    from vla_collect.episode_io import open_episode
    sums = {}
    for key in ('state', 'action'):
        sums[key] = [0.0, 0.0, 0]  # sum, sum of squares, count
    levels: list[set[float] | None] = [set() for _ in info.action_names]
    for i in ids:
        rec = info.episodes[i]
        with open_episode(rec.path, info.action_space) as ep:
            for key, data in (('state', ep.joint_positions[()]), ('action', ep.actions[()])):
                data = np.asarray(data, dtype=np.float64)
                bad = np.argwhere(~np.isfinite(data))
                if bad.size:
                    step, col = bad[0]
                    raise DataError(f'{rec.path}: non-finite value in {key} at step {step} (column {col})')
                s = sums[key]
                s[0] = s[0] + data.sum(0)
                s[1] = s[1] + (data ** 2).sum(0)
                s[2] += data.shape[0]
                if key == 'action':
                    for d, seen in enumerate(levels):
                        if seen is not None:
                            seen.update(np.unique(data[:, d]).tolist()[:MAX_LEVELS + 1])
                            levels[d] = seen if len(seen) <= MAX_LEVELS else None
    stats: dict[str, Any] = {}
    for key, (total, sq, count) in sums.items():
        mean = total / count
        std = np.sqrt(np.maximum(sq / count - mean ** 2, 0.0))
        stats[key] = {'mean': mean.tolist(), 'std': std.tolist(), 'count': int(count)}
    stats['action']['levels'] = [sorted(v) if v is not None and len(v) == 2 else None for v in levels]
    return stats


def load_or_compute_stats(info: DatasetInfo, ids: list[int], cache_dirs: list[Path]) -> dict[str, Any]:
    """:func:`compute_stats`, cached as ``stats_<fingerprint>.json`` in the first writable of
    ``cache_dirs`` (read from any of them)."""
    name = f'stats_{info.fingerprint(ids)}.json'
    for d in cache_dirs:
        try:
            cached = json.loads((d / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if 'levels' in cached.get('action', {}):  # written before the levels were counted: recompute
            return cached
    stats = compute_stats(info, ids)
    for d in cache_dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            atomic_write_json(d / name, stats, indent=None)
            break
        except OSError:
            continue
    return stats


# -- samples -------------------------------------------------------------------------------------
def window_indices(t: int, length: int, n_obs_steps: int, chunk_size: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frame indices of the history ending at ``t`` and action indices of the chunk starting at
    ``t``, clamped into the episode, with their padding masks."""
    obs = np.arange(t - n_obs_steps + 1, t + 1)
    act = np.arange(t, t + chunk_size)
    return np.clip(obs, 0, length - 1), obs < 0, np.clip(act, 0, length - 1), act >= length


class EpisodeDataset(torch.utils.data.Dataset):
    """All time steps of the episodes ``ids`` of ``info`` as training samples."""

    def __init__(self, info: DatasetInfo, ids: list[int], n_obs_steps: int, chunk_size: int,
                 image_size: int, cache_images: bool | str = 'auto', cache_budget_gb: float = 4.0,
                 progress: bool = True, cameras: list[str] | tuple[str, ...] = ()) -> None:
        from vla_collect.episode_io import open_episode
        if not ids:
            raise DataError('EpisodeDataset needs at least one episode')
        self.info = info
        self.ids = list(ids)
        self.n_obs_steps = n_obs_steps
        self.chunk_size = chunk_size
        self.image_size = image_size
        self.cameras = list(cameras)  # extra cameras, served as images_<camera>
        missing = [(info.episodes[i].path, c) for i in self.ids for c in self.cameras
                   if c not in info.episodes[i].cameras]
        if missing:
            path, camera = missing[0]
            raise DataError(f'{path} has no camera {camera!r} (recorded: {list(info.episodes[self.ids[0]].cameras)}); '
                            f'{len(missing)} episode(s) lack a camera the model needs')
        self.paths = [info.episodes[i].path for i in self.ids]
        self.instructions = [info.episodes[i].instruction for i in self.ids]
        self.lengths = np.array([info.episodes[i].length for i in self.ids])
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)])
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        for path in self.paths:
            with open_episode(path, info.action_space) as ep:
                self.states.append(np.asarray(ep.joint_positions[()], dtype=np.float32))
                self.actions.append(np.asarray(ep.actions[()], dtype=np.float32))
        # the same, end to end over all episodes (sample i of episode k is row starts[k] + i)
        self._all_states = np.concatenate(self.states)
        self._all_actions = np.concatenate(self.actions)
        self._files: dict[int, Any] = {}
        self._pid = os.getpid()
        frame_bytes = image_size * image_size * 3 * (1 + len(self.cameras))
        want = cache_images is True or (cache_images == 'auto'
                                        and len(self) * frame_bytes <= cache_budget_gb * 2 ** 30)
        # resized frames in RAM: {dataset name: frames of all episodes end to end (N, S, S, 3)}
        self.frames: dict[str, np.ndarray] | None = self._cache_frames(progress) if want else None

    @property
    def image_keys(self) -> list[str]:
        """HDF5 image datasets served, main first: ``images``, ``images_<camera>``..."""
        return ['images', *(f'images_{c}' for c in self.cameras)]

    def _cache_frames(self, progress: bool) -> dict[str, np.ndarray]:
        size = self.image_size
        frames = {key: np.empty((len(self), size, size, 3), np.uint8) for key in self.image_keys}
        paths = tqdm(self.paths, desc='caching resized frames', unit='ep', disable=not progress, leave=False)
        for k, _ in enumerate(paths):
            for key in self.image_keys:
                images = self._images(k, key)[()]  # one read of the episode: per-frame reads cost more
                out = frames[key][self.starts[k]:self.starts[k + 1]]
                for i in range(images.shape[0]):
                    out[i] = prepare_image(images[i], size)
            self._close_files()
        return frames

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state['_files'] = {}  # h5py handles do not cross processes; each worker opens its own
        return state

    def _images(self, k: int, key: str = 'images'):
        if self._pid != os.getpid():  # forked into a worker: never share the parent's handles
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            import h5py
            self._files[k] = h5py.File(self.paths[k], 'r')
        return self._files[k][f'observations/{key}']

    def _close_files(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing a handle that is already gone
                pass
        self._files = {}

    def locate(self, index: int) -> tuple[int, int]:
        """(episode position in ``ids``, step) of a flat sample index."""
        if not 0 <= index < len(self):
            raise IndexError(f'sample {index} out of range [0, {len(self)})')
        k = int(np.searchsorted(self.starts, index, side='right') - 1)
        return k, int(index - self.starts[k])

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, t = self.locate(index)
        length = int(self.lengths[k])
        obs_idx, obs_pad, act_idx, act_pad = window_indices(t, length, self.n_obs_steps, self.chunk_size)
        sample: dict[str, Any] = {}
        for key in self.image_keys:  # images (T, S, S, 3) uint8, then images_<camera>
            if self.frames is not None:
                frames = self.frames[key][self.starts[k] + obs_idx]
            else:
                images = self._images(k, key)
                distinct = {i: prepare_image(images[i], self.image_size) for i in sorted(set(obs_idx.tolist()))}
                frames = np.stack([distinct[i] for i in obs_idx.tolist()])
            sample[key] = torch.from_numpy(frames)
        return {
            **sample,
            'joint_positions': torch.from_numpy(self.states[k][obs_idx]),  # (T, N)
            'instruction': self.instructions[k],
            'actions': torch.from_numpy(self.actions[k][act_idx]),  # (K, A)
            'action_is_pad': torch.from_numpy(act_pad),  # (K,)
            'obs_is_pad': torch.from_numpy(obs_pad),  # (T,)
            'episode': k,
            'step': t,
        }

    def __getitems__(self, indices: list[int]) -> dict[str, Any] | list[dict[str, Any]]:
        """A whole batch (as :func:`collate` makes it) with a few array gathers when the frames are
        cached; otherwise the samples one by one, to be collated."""
        if self.frames is None:
            return [self[i] for i in indices]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and not (0 <= idx.min() and idx.max() < len(self)):
            raise IndexError(f'sample index out of range [0, {len(self)}): {indices}')
        ks = np.searchsorted(self.starts, idx, side='right') - 1
        ts = idx - self.starts[ks]
        first, last = self.starts[ks][:, None], self.starts[ks + 1][:, None] - 1
        obs = ts[:, None] + np.arange(1 - self.n_obs_steps, 1)  # (B, T) steps of the history
        act = ts[:, None] + np.arange(self.chunk_size)  # (B, K) steps of the chunk
        obs_rows, act_rows = np.clip(first + obs, first, last), np.clip(first + act, first, last)
        batch: dict[str, Any] = {key: torch.from_numpy(self.frames[key][obs_rows]) for key in self.image_keys}
        batch.update({
            'joint_positions': torch.from_numpy(self._all_states[obs_rows]),  # (B, T, N)
            'instruction': [self.instructions[k] for k in ks.tolist()],
            'actions': torch.from_numpy(self._all_actions[act_rows]),  # (B, K, A)
            'action_is_pad': torch.from_numpy(act >= self.lengths[ks][:, None]),  # (B, K)
            'obs_is_pad': torch.from_numpy(obs < 0),  # (B, T)
            'episode': torch.from_numpy(ks),
            'step': torch.from_numpy(ts),
        })
        return batch


def collate(batch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for :class:`EpisodeDataset`: a batch that ``__getitems__`` already
    built passes through; a list of samples is stacked."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)
