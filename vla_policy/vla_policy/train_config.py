"""The configuration of a training run: ``TrainConfig`` (optimisation and bookkeeping, whose fields
are also the `train` command's options) and the model's ``VLAConfig`` built from the model options
(preset, ``--config``, ``--set``, ``--cameras``, encoder paths) and the dataset."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_policy.config import DEFAULT_LR, PRESET_LR, PRESETS, VLAConfig, preset
from vla_policy.dataclass_cli import option
from vla_policy.dataset import DatasetInfo
from vla_policy.policy import IncompatibleCheckpoint


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one training run (the model is a VLAConfig).

    Each field is a `train` option (``--batch-size`` for ``batch_size``; see dataclass_cli)."""

    data: str = option('', 'directory of episode_*.hdf5 files', required=True)
    out: str = option('runs/train', 'run directory')
    steps: int | None = option(None, 'optimizer steps', exclusive='length')
    epochs: float | None = option(None, 'passes over the training samples (default 10 when --steps is not given)',
                                  exclusive='length')
    # on a CPU, 32 gives ~1.6x the steps of 64 per minute, and the number of steps is what a short
    # run is short of
    batch_size: int = option(32, 'samples per optimizer step and process')
    lr: float = option(1e-3, f"peak learning rate of AdamW (default: the preset's, {PRESET_LR['cpu']:g} for cpu, "
                             f'{DEFAULT_LR:g} for the presets with pretrained encoders)', cli_default=None)
    weight_decay: float = option(1e-4, 'AdamW decoupled weight decay')
    warmup_steps: int = option(200, 'linear warmup steps before the cosine decay, at most a quarter of the schedule')
    min_lr_ratio: float = option(0.01, 'learning rate at the end of the schedule / peak, below 0.05')
    grad_clip: float = option(1.0, 'max global gradient norm')
    ema: float = option(0.0, 'EMA decay of the saved weights, e.g. 0.999 (default 0: off)')
    val_fraction: float = option(0.1, 'share of episodes held out for validation')
    val_every: int = option(500, 'steps between validation passes')
    val_batches: int = option(20, 'at most this many batches per validation pass')
    checkpoint_every: int = option(1000, 'steps between periodic checkpoints')
    keep_checkpoints: int = option(3, 'periodic checkpoints kept, the oldest deleted first')
    log_every: int = option(25, 'steps between metric rows')
    augment: bool = option(True, 'turn off image augmentation (random shift and colour jitter)', flag='--no-augment')
    aug_shift: float = option(0.0625, 'random image shift as a fraction of the image size; 0.0625 is 4 px at 64 px')
    state_noise: float = option(0.0, 'Gaussian noise added to the joint-position input while training, as a '
                                     'fraction of each joint\'s std over the data (0 = off): the policy cannot read '
                                     'where to go from where the arm already is, and must look')
    seed: int = option(0, 'random seed of the split, batch order, initialisation and augmentation')
    device: str = option('auto', 'auto, cpu, cuda or cuda:N')
    workers: int = option(-1, 'DataLoader workers (-1: 0 with cached frames, else 2)')
    cache_images: str = option('auto', 'keep resized frames in RAM (auto: when they fit --cache-budget-gb)',
                               choices=('auto', 'on', 'off'))
    cache_budget_gb: float = option(4.0, 'RAM budget of the frame cache in auto mode, GB')
    max_minutes: float | None = option(
        None, 'wall-clock budget: the whole schedule (warmup, cosine decay, final checkpoint) fits in it, data '
              'preparation included; with --steps or --epochs, whichever ends first')
    skip_invalid: bool = option(False, 'train on the valid episodes, skipping bad files')
    include_failed: bool = option(False, 'also learn from episodes with success=False')
    action_space: str = option('joint', 'the actions to learn: joint (/actions, the joint targets) or ee_delta '
                                        '(/actions_ee of `vla collect --action-mode ee_delta`)',
                               choices=('joint', 'ee_delta'))
    threads: int = option(0, 'torch CPU threads (0: torch default)')

    def __post_init__(self) -> None:
        for name in ('batch_size', 'val_every', 'checkpoint_every', 'log_every', 'val_batches', 'keep_checkpoints'):
            if getattr(self, name) < 1:
                raise ValueError(f'--{name.replace("_", "-")} must be >= 1, got {getattr(self, name)}')
        if self.steps is not None and self.steps < 1:
            raise ValueError(f'--steps must be >= 1, got {self.steps}')
        if self.epochs is not None and self.epochs <= 0:
            raise ValueError(f'--epochs must be > 0, got {self.epochs}')
        if self.lr <= 0 or self.warmup_steps < 0 or self.grad_clip <= 0:
            raise ValueError(f'need --lr > 0, --warmup-steps >= 0, --grad-clip > 0; got {self.lr}, '
                             f'{self.warmup_steps}, {self.grad_clip}')
        if not 0.0 <= self.min_lr_ratio < 0.05:
            raise ValueError(f'--min-lr-ratio must be in [0, 0.05) so the schedule ends annealed, got {self.min_lr_ratio}')
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f'--max-minutes must be > 0, got {self.max_minutes}')
        if self.cache_images not in ('auto', 'on', 'off'):
            raise ValueError(f"--cache-images must be auto, on or off, got {self.cache_images!r}")
        if not (self.state_noise >= 0.0 and math.isfinite(self.state_noise)):
            raise ValueError(f'--state-noise must be a finite fraction >= 0, got {self.state_noise}')
        if not 0.0 <= self.aug_shift < 0.5:
            raise ValueError(f'--aug-shift must be a fraction in [0, 0.5), got {self.aug_shift}')
        if not (self.ema == 0.0 or 0.0 < self.ema < 1.0):
            raise ValueError(f'--ema must be 0 (off) or a decay in (0, 1), got {self.ema}')


# -- model configuration --------------------------------------------------------------------------
def add_model_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options ``build_model_config`` reads (a VLAConfig is not a TrainConfig field)."""
    parser.add_argument('--preset', default='cpu', choices=PRESETS, help='model preset (default cpu)')
    parser.add_argument('--config', help='JSON file of VLAConfig fields applied over the preset')
    parser.add_argument('--set', action='append', metavar='KEY=VALUE',
                        help='one VLAConfig field, e.g. --set chunk_size=20 (repeatable; applied after --config)')
    parser.add_argument('--cameras', default='all',
                        help='extra cameras to use beside the main image: "all" recorded in every episode '
                             '(default), "none", or a comma-separated list such as "wrist"')
    parser.add_argument('--clip-path', help='local CLIP ViT-B/32 directory (clip-bert; or $VLA_CLIP_PATH)')
    parser.add_argument('--bert-path', help='local BERT directory (clip-bert; or $VLA_BERT_PATH)')


#: the rate at which the presets' step counts (chunk_size, n_action_steps) are stated
PRESET_FPS = 30.0


def rate_defaults(config: VLAConfig, fps: float, given: dict[str, Any]) -> dict[str, int]:
    """The chunk length and action steps of preset ``config`` as durations, in steps of data
    recorded at ``fps``.

    A preset's ``chunk_size`` of 16 means 16/30 s of future actions; on 10 Hz data that is 5
    steps, on 50 Hz data 27, so the plan covers the same time whatever the robot's rate. Values
    given in ``given`` (``--config``, ``--set``) are kept as they are."""
    if not fps > 0:
        raise ValueError(f'the data rate must be positive, got {fps} Hz')
    scale = fps / PRESET_FPS
    out = {}
    if 'chunk_size' not in given:
        out['chunk_size'] = max(1, round(config.chunk_size * scale))
    chunk = int(given.get('chunk_size', out.get('chunk_size', config.chunk_size)))
    if 'n_action_steps' not in given:
        out['n_action_steps'] = min(chunk, max(1, round(config.n_action_steps * scale)))
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items -> {key: value}, each value read as JSON (``[2, 2, 1, 1]``, ``true``,
    ``0.1``) or else kept as the string; ValueError for an item without ``=``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--set expects key=value, got {item!r}')
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def build_model_config(args: argparse.Namespace, info: DatasetInfo) -> VLAConfig:
    """Preset, then a --config JSON file, then --set overrides, then the dataset's interface
    (joints, actions, cameras, image size, and the chunk length in seconds: :func:`rate_defaults`)."""
    overrides: dict[str, Any] = {}
    if args.config:
        try:
            overrides.update(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f'--config {args.config}: cannot read a JSON object of VLAConfig fields ({exc})') from exc
    overrides.update(parse_set(args.set or []))
    if args.clip_path:
        overrides['clip_path'] = args.clip_path
    if args.bert_path:
        overrides['language_path'] = args.bert_path
    for key in ('preset', 'joint_names', 'action_names', 'state_dim', 'action_dim'):
        overrides.pop(key, None)
    cameras = getattr(args, 'cameras', 'all')
    if cameras == 'all':
        overrides.setdefault('extra_cameras', list(info.cameras))
    else:
        overrides['extra_cameras'] = [] if cameras == 'none' else [c for c in cameras.split(',') if c]
    absent = [c for c in overrides['extra_cameras'] if c not in info.cameras]
    if absent:
        raise ValueError(f'camera(s) {absent} are not recorded in every episode of {info.directory}; '
                         f'cameras there: {info.cameras or "none besides the main image"}')
    known = {f.name for f in dataclasses.fields(VLAConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f'unknown model setting(s) {unknown}; VLAConfig fields are {sorted(known)}')
    overrides.update(rate_defaults(preset(args.preset), info.fps, given=overrides))
    return preset(args.preset, **overrides, joint_names=list(info.joint_names),
                  action_names=list(info.action_names), state_dim=info.state_dim, action_dim=info.action_dim,
                  fps=info.fps, source_image_size=list(info.image_shape[:2]))


def check_matches_data(config: VLAConfig, info: DatasetInfo, source: Path) -> None:
    """A checkpoint continued on data must have the data's joints and actions."""
    problems = []
    if list(config.joint_names) != list(info.joint_names):
        problems.append(f'joint names {list(config.joint_names)} vs data {info.joint_names}')
    if list(config.action_names) != list(info.action_names) or config.action_dim != info.action_dim:
        problems.append(f'actions {list(config.action_names)} (dim {config.action_dim}) vs data '
                        f'{info.action_names} (dim {info.action_dim})')
    absent = [c for c in config.extra_cameras if c not in info.cameras]
    if absent:
        problems.append(f'cameras {absent} not recorded in the data (it has {info.cameras})')
    if problems:
        raise IncompatibleCheckpoint(f'checkpoint {source} does not match the data in {info.directory}: '
                                     + '; '.join(problems))
