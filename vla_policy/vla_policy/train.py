"""Behavioural cloning of a VLAPolicy on recorded HDF5 episodes.

    ros2 run vla_policy train --data DATA_DIR --out RUN_DIR [--preset cpu|clip-bert] [--steps N]
    vla train --data DATA_DIR --out RUN_DIR --epochs 20
    vla train --data DATA_DIR --out RUN_DIR --max-minutes 10      (a fully trained model in 10 min)
    torchrun --nproc_per_node 4 -m vla_policy.train --data ... --out ...     (DDP, no code change)

RUN_DIR receives ``checkpoint/`` (the latest model: model.safetensors, config.json, tokenizer/,
metadata.json, training_state.pt for --resume), ``checkpoints/step_NNNNNN/`` (periodic),
``metrics.csv``/``metrics.jsonl``, ``loss.png`` and ``train_config.json``.

How long it trains: ``--steps N`` (or ``--epochs E``) is a step count; ``--max-minutes M`` is a
wall-clock budget (counted from the start, data preparation included) over which the whole
schedule runs: warmup, cosine decay to ``--min-lr-ratio`` of the peak, EMA and the final
checkpoint, so a slow machine gets fewer steps but a finished schedule. Given both, the schedule
ends with whichever comes first (a step cap on a fast machine, the budget on a slow one). With
neither, 10 epochs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch

from vla_common.files import atomic_path, atomic_write_json
from vla_policy.config import DEFAULT_LR, PRESET_LR, PRESETS, VLAConfig, preset, preset_lr
from vla_policy.dataset import (DataError, DatasetInfo, EpisodeDataset, collate, load_or_compute_stats,
                                scan_episodes, split_episodes)
from vla_policy.encoders import WeightsNotFound
from vla_policy.images import augment_images
from vla_policy.policy import (CheckpointError, IncompatibleCheckpoint, VLAPolicy, read_metadata,
                               resolve_checkpoint)
from vla_policy.training import (EMA, MAX_WARMUP_SHARE, MIN_WARMUP_STEPS, EpochBatchSampler, MetricsLog,
                                 Schedule)

log = logging.getLogger('vla_policy.train')
TRAINING_STATE = 'training_state.pt'
BUDGET_PROBE_STEPS = 3  # steps timed (after the first) to check that a time budget is long enough


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one training run (the model is a VLAConfig)."""

    data: str = ''  # directory of episode_*.hdf5
    out: str = 'runs/train'  # run directory
    steps: int | None = None  # optimizer steps (default: from epochs)
    epochs: float | None = None  # passes over the training samples (used when steps is None)
    # samples per optimizer step and process: on a CPU, 32 gives ~1.6x the steps of 64 per
    # minute, and the number of steps is what a short run is short of
    batch_size: int = 32
    lr: float = 1e-3  # peak learning rate (AdamW); the CLI's default is the preset's (config.preset_lr)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    warmup_steps: int = 200  # linear warmup (cut at a quarter of the schedule) before cosine decay
    min_lr_ratio: float = 0.01  # learning rate at the end of the schedule / peak (< 0.05)
    grad_clip: float = 1.0  # max global gradient norm
    ema: float = 0.0  # EMA decay of the weights that get saved (0 = off)
    val_fraction: float = 0.1  # share of episodes held out for validation
    val_every: int = 500  # steps between validation passes
    val_batches: int = 20  # batches per validation pass (at most)
    checkpoint_every: int = 1000  # steps between periodic checkpoints
    keep_checkpoints: int = 3  # periodic checkpoints kept (oldest deleted)
    log_every: int = 25  # steps between metric rows
    augment: bool = True  # random shift + colour jitter on training images
    aug_shift: float = 0.0625  # random shift, as a fraction of the model's image size (4 px at 64 px)
    seed: int = 0  # split, batch order, init, augmentation
    device: str = 'auto'  # auto | cpu | cuda | cuda:N
    workers: int = -1  # DataLoader workers (-1: 0 with cached frames, else 2)
    cache_images: str = 'auto'  # keep resized frames in RAM: auto (if they fit) | on | off
    cache_budget_gb: float = 4.0  # RAM budget of the frame cache in auto mode
    max_minutes: float | None = None  # wall-clock budget the schedule is fitted into
    skip_invalid: bool = False  # train on the valid episodes when some files are bad
    include_failed: bool = False  # also learn from episodes with success=False
    threads: int = 0  # torch CPU threads (0: torch default)

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
        if not 0.0 <= self.aug_shift < 0.5:
            raise ValueError(f'--aug-shift must be a fraction in [0, 0.5), got {self.aug_shift}')
        if not (self.ema == 0.0 or 0.0 < self.ema < 1.0):
            raise ValueError(f'--ema must be 0 (off) or a decay in (0, 1), got {self.ema}')


# -- distributed ----------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: join the process group (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return Dist()
    import torch.distributed as dist
    backend = 'nccl' if device.startswith('cuda') and torch.cuda.is_available() else 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get('LOCAL_RANK', '0')))


def pick_device(spec: str, dist: Dist) -> torch.device:
    if spec == 'auto':
        spec = 'cuda' if torch.cuda.is_available() else 'cpu'
    if spec.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ValueError(f'--device {spec}: no CUDA device is available here; use --device cpu')
        if spec == 'cuda':
            spec = f'cuda:{dist.local_rank}'
    elif spec != 'cpu':
        raise ValueError(f'--device must be auto, cpu, cuda or cuda:N, got {spec!r}')
    return torch.device(spec)


# -- model configuration --------------------------------------------------------------------------
def build_model_config(args: argparse.Namespace, info: DatasetInfo) -> VLAConfig:
    """Preset, then a --config JSON file, then --set overrides, then the dataset's interface."""
    overrides: dict[str, Any] = {}
    if args.config:
        try:
            overrides.update(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f'--config {args.config}: cannot read a JSON object of VLAConfig fields ({exc})') from exc
    for item in args.set or []:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--set expects key=value, got {item!r}')
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
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


# -- the run ------------------------------------------------------------------------------------
class Trainer:
    """One training run: data, model, optimizer, loop, validation and checkpoints."""

    def __init__(self, cfg: TrainConfig, model_config: VLAConfig, info: DatasetInfo, dist: Dist,
                 device: torch.device, resume_from: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.info, self.dist, self.device = cfg, info, dist, device
        self.clock = clock  # wall clock of the budget (tests inject a fake one)
        self._start = clock()  # the budget counts data preparation too
        self.out = Path(cfg.out)
        self.train_ids, self.val_ids = split_episodes(len(info.episodes), cfg.val_fraction, cfg.seed)
        self.stats = load_or_compute_stats(info, self.train_ids, [info.directory / '.vla_cache', self.out / 'cache'])

        torch.manual_seed(cfg.seed)
        self.model = VLAPolicy(model_config, load_pretrained=True).to(device)
        self.model.set_normalization(self.stats, info.instructions)
        mc = self.model.config
        cache = {'auto': 'auto', 'on': True, 'off': False}[cfg.cache_images]
        self.train_set = EpisodeDataset(info, self.train_ids, mc.n_obs_steps, mc.chunk_size, mc.image_size,
                                        cache, cfg.cache_budget_gb, progress=dist.main, cameras=mc.extra_cameras)
        self.val_set = (EpisodeDataset(info, self.val_ids, mc.n_obs_steps, mc.chunk_size, mc.image_size,
                                       cache, cfg.cache_budget_gb, progress=False, cameras=mc.extra_cameras)
                        if self.val_ids else None)
        per_step = cfg.batch_size * dist.world
        total_steps: int | None = cfg.steps
        if cfg.steps is None and (cfg.epochs is not None or cfg.max_minutes is None):
            total_steps = max(1, math.ceil((cfg.epochs or 10.0) * len(self.train_set) / per_step))
        self.schedule = Schedule(cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio, total_steps,
                                 cfg.max_minutes * 60.0 if cfg.max_minutes is not None else None)

        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                                            {'params': no_decay, 'weight_decay': 0.0}], lr=cfg.lr,
                                           fused=True)  # one kernel for all parameters, CPU and CUDA
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.step = 0
        self.last_lr: float | None = None
        self.samples_done, self.steps_done, self.train_seconds = 0, 0, 0.0  # this session's throughput
        self.elapsed_before = 0.0
        self.cpu_before = 0.0  # CPU seconds of earlier sessions of this run (resume)
        if resume_from is not None:
            self._load_training_state(resume_from)
        self.ddp_model: torch.nn.Module = self.model
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == 'cuda' else None)
        self.autocast = device.type == 'cuda'
        self.metrics = MetricsLog(self.out, truncate_after_step=self.step) if dist.main else None

    # -- state --------------------------------------------------------------------------------
    def _trainable_state(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        skip = 'language.net.' if self.model.config.freeze_language else None
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()
                if skip is None or not k.startswith(skip)}

    def _load_training_state(self, directory: Path) -> None:
        path = directory / TRAINING_STATE
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f'cannot resume from {path}: {exc}') from exc
        missing, unexpected = self.model.load_state_dict(state['model'], strict=False)
        missing = [k for k in missing if not k.startswith('language.net.')]
        if missing or unexpected:
            raise CheckpointError(f'{path} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}')
        self.optimizer.load_state_dict(state['optimizer'])
        if self.ema is not None and state.get('ema') is not None:
            self.ema.model.load_state_dict(state['ema'], strict=False)
        self.step = int(state['step'])
        self.elapsed_before = float(state.get('elapsed_s', 0.0))
        self.cpu_before = float(state.get('cpu_s', 0.0))
        cfg = self.cfg
        if cfg.steps is None and cfg.epochs is None and cfg.max_minutes is None:  # continue as it was
            saved = state.get('schedule') or {'total_steps': state.get('total_steps')}
            self.schedule.total_steps = saved.get('total_steps') or self.schedule.total_steps
            self.schedule.budget_s = saved.get('budget_s')
        sched = state.get('schedule') or {}
        if 'warmup_end' in sched and self.schedule.budget_s is not None:
            self.schedule.warmup_end = sched['warmup_end']

    @property
    def total_steps(self) -> int | None:
        return self.schedule.total_steps

    def schedule_state(self) -> dict[str, Any]:
        """The schedule and where it ended (or stands): saved in the metadata and training state."""
        s = self.schedule
        progress = s.progress(self.step, self.elapsed())
        return {'mode': s.mode, 'total_steps': s.total_steps, 'budget_s': s.budget_s,
                'warmup_steps': s.warmup_steps, 'warmup_end': s.warmup_end, 'decay_start': round(s.decay_start, 4),
                'peak_lr': s.base_lr, 'min_lr_ratio': s.min_ratio, 'steps_done': self.step,
                'progress': round(progress, 4), 'last_lr': self.last_lr,
                'last_lr_ratio': round(self.last_lr / s.base_lr, 5) if self.last_lr is not None else None,
                'finished': progress >= 1.0,
                'samples_per_s': round(self.samples_done / max(1e-9, self.train_seconds), 2) if self.samples_done else None,
                'steps_per_s': round(self.steps_done / max(1e-9, self.train_seconds), 3) if self.steps_done else None}

    def _metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            'step': self.step,
            'total_steps': self.total_steps,
            'schedule': self.schedule_state(),
            'epoch': self.step * self.cfg.batch_size * self.dist.world / max(1, len(self.train_set)),
            'elapsed_s': round(self.elapsed(), 1),
            'cpu_s': round(self.cpu_seconds(), 1),
            'metrics': metrics,
            'dataset': {
                'directory': str(self.info.directory.resolve()),
                'fingerprint': self.info.fingerprint(),
                'episodes': len(self.info.episodes),
                'steps': self.info.num_steps,
                'train_episodes': [self.info.episodes[i].path.name for i in self.train_ids],
                'val_episodes': [self.info.episodes[i].path.name for i in self.val_ids],
                'instructions': self.info.instructions,
            },
            'normalization': self.stats,
            'train_config': dataclasses.asdict(self.cfg),
            'ema': self.ema is not None,
            'versions': {'torch': torch.__version__},
        }

    def save(self, metrics: dict[str, Any]) -> None:
        """Write ``checkpoint/`` (and a periodic copy); only the main process writes."""
        if not self.dist.main:
            return
        if self.metrics is not None and self.metrics.rows:
            self.metrics.plot(self.out / 'loss.png')
        deploy = self.ema.model if self.ema is not None else self.model
        ckpt = deploy.save_pretrained(self.out / 'checkpoint', metadata=self._metadata(metrics))
        state = {'model': self._trainable_state(self.model), 'optimizer': self.optimizer.state_dict(),
                 'ema': self._trainable_state(self.ema.model) if self.ema is not None else None,
                 'step': self.step, 'total_steps': self.total_steps, 'elapsed_s': self.elapsed(),
                 'cpu_s': self.cpu_seconds(), 'schedule': self.schedule_state()}
        with atomic_path(ckpt / TRAINING_STATE) as tmp:
            torch.save(state, tmp)
        periodic = self.out / 'checkpoints' / f'step_{self.step:07d}'
        if periodic.exists():
            shutil.rmtree(periodic)
        shutil.copytree(ckpt, periodic)
        kept = sorted((self.out / 'checkpoints').glob('step_*'))
        for old in kept[: max(0, len(kept) - self.cfg.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)

    def elapsed(self) -> float:
        """Wall seconds of the run so far (earlier sessions included); in DDP rank 0's clock."""
        return self.elapsed_before + (self.clock() - self._start)

    def _synced_elapsed(self) -> float:
        elapsed = self.elapsed()
        if self.dist.world > 1 and self.schedule.budget_s is not None:  # every rank follows rank 0's clock
            t = torch.tensor([elapsed], dtype=torch.float64)
            torch.distributed.broadcast(t, src=0)
            elapsed = float(t)
        return elapsed

    def cpu_seconds(self) -> float:
        """CPU time of this process (all threads) over the run: the fair clock on a shared machine."""
        return self.cpu_before + (time.process_time() - self._cpu_start)

    # -- loop ---------------------------------------------------------------------------------
    def _loader(self, dataset: EpisodeDataset, sampler) -> torch.utils.data.DataLoader:
        workers = self.cfg.workers if self.cfg.workers >= 0 else (0 if dataset.frames is not None else 2)
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                                           pin_memory=self.device.type == 'cuda',
                                           persistent_workers=workers > 0, prefetch_factor=4 if workers else None)

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_set is None:
            return None
        model = self.ema.model if self.ema is not None else self.model
        was_training = model.training
        model.eval()
        n = len(self.val_set)
        bs = self.cfg.batch_size
        starts = range(0, n, bs)
        # evenly spread batches over the whole validation set, deterministic
        chosen = [starts[i] for i in sorted({round(j * (len(starts) - 1) / max(1, self.cfg.val_batches - 1))
                                             for j in range(min(self.cfg.val_batches, len(starts)))})]
        loader = torch.utils.data.DataLoader(self.val_set, batch_sampler=[list(range(s, min(n, s + bs))) for s in chosen],
                                             collate_fn=collate)
        total, count = 0.0, 0
        for batch in loader:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss, _ = model(batch)
            total += float(loss) * len(batch['instruction'])
            count += len(batch['instruction'])
        model.train(was_training)
        return total / max(1, count)

    def train_step(self, batch: dict[str, Any], progress: float) -> dict[str, float]:
        cfg = self.cfg
        lr = self.schedule.lr(self.step, progress)
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        torch.manual_seed(cfg.seed * 1_000_003 + self.step * 7919 + self.dist.rank)  # dropout: resumable
        if cfg.augment:
            gen = torch.Generator(device='cpu').manual_seed(cfg.seed * 999_983 + self.step * 31 + self.dist.rank)
            shift = int(round(cfg.aug_shift * self.model.config.image_size))
            for key in self.train_set.image_keys:
                batch[key] = augment_images(batch[key], gen, shift=shift)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss, info = self.ddp_model(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'loss became {loss.item()} at step {self.step}; lower --lr '
                                     f'(now {cfg.lr}) or check the data')
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
        self.optimizer.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        self.last_lr = lr
        return {'loss': loss.item(), 'l1': info['l1'], 'mse': info['mse'], 'grad_norm': float(grad_norm), 'lr': lr}

    def _check_budget(self, setup_s: float, first_step_elapsed: float) -> None:
        """Refuse a time budget that cannot hold the set-up, a useful warmup and a decay (measured
        over the first steps of a fresh run)."""
        s = self.schedule
        if s.budget_s is None:
            return
        if self.step > 1:
            step_s = (self.elapsed() - first_step_elapsed) / (self.step - 1)
        else:
            step_s = self.elapsed() - self.elapsed_before - setup_s
        if s.total_steps is not None and setup_s + s.total_steps * step_s < s.budget_s:
            return  # the step count ends first: the budget is only a cap
        need = s.minimum_budget_s(setup_s, step_s)
        if need > s.budget_s:
            minutes = math.ceil(need / 60.0 * 10) / 10
            raise ValueError(
                f'--max-minutes {self.cfg.max_minutes:g} is too short on this machine: data preparation took '
                f'{setup_s:.0f} s and one step takes {step_s:.2f} s, so the '
                f'{min(s.warmup_steps, MIN_WARMUP_STEPS)} warmup steps that must fit in the first '
                f'{MAX_WARMUP_SHARE:.0%} of the budget, then a decay, need at least --max-minutes {minutes:g} '
                f'(or give --steps)')

    def run(self) -> dict[str, Any]:
        from tqdm import tqdm
        cfg = self.cfg
        self._cpu_start = time.process_time()
        self.model.train()
        sampler = EpochBatchSampler(len(self.train_set), cfg.batch_size, cfg.seed, self.dist.rank, self.dist.world,
                                    start_batch=self.step)
        loader = iter(self._loader(self.train_set, sampler))
        bar = tqdm(total=100, desc='train', unit='%', disable=not self.dist.main, dynamic_ncols=True,
                   bar_format='{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]')
        last: dict[str, Any] = {}
        fresh, first_step_elapsed = self.step == 0, 0.0
        setup_s = self._synced_elapsed() - self.elapsed_before
        progress = self.schedule.progress(self.step, self._synced_elapsed())
        if fresh and progress >= 1.0:
            raise ValueError(f'--max-minutes {cfg.max_minutes:g} is spent before the first step: data preparation '
                             f'took {setup_s:.0f} s; give more time')
        bar.update(100 * progress)
        window_start, window_samples = self.clock(), 0
        session_start = self.clock()
        while progress < 1.0:
            row = self.train_step(next(loader), progress)
            window_samples += cfg.batch_size * self.dist.world
            self.samples_done += cfg.batch_size * self.dist.world
            self.steps_done += 1
            self.train_seconds = self.clock() - session_start
            row['progress'] = round(progress, 4)
            new_progress = self.schedule.progress(self.step, self._synced_elapsed())
            bar.update(min(100.0 - bar.n, 100 * (new_progress - progress)))
            progress = new_progress
            bar.set_postfix(step=self.step, loss=f'{row["loss"]:.4f}', lr=f'{row["lr"]:.2e}')
            if fresh and self.step == 1:
                first_step_elapsed = self.elapsed()  # the first step pays one-off costs: time the next ones
            if fresh and (self.step == 1 + BUDGET_PROBE_STEPS or (progress >= 1.0 and self.step < 1 + BUDGET_PROBE_STEPS)):
                self._check_budget(setup_s, first_step_elapsed)
            done = progress >= 1.0
            val_loss = self.validate() if (self.step % cfg.val_every == 0 or done) else None
            if self.step % cfg.log_every == 0 or val_loss is not None:
                now = self.clock()
                row.update(step=self.step, epoch=round(sampler.epoch_of(self.step - 1), 3), val_loss=val_loss,
                           samples_per_s=round(window_samples / max(1e-9, now - window_start), 2),
                           elapsed_s=round(self.elapsed(), 1), cpu_s=round(self.cpu_seconds(), 1))
                window_start, window_samples = now, 0
                last = {**last, **{k: v for k, v in row.items() if v is not None}}
                if self.metrics is not None:
                    self.metrics.append(row)
                    if val_loss is not None:
                        self.metrics.plot(self.out / 'loss.png')
            if self.step % cfg.checkpoint_every == 0 or done:
                self.save(last)
                if self.dist.world > 1:
                    torch.distributed.barrier()
        bar.close()
        schedule = self.schedule_state()
        if self.dist.main:
            log.info('schedule finished at step %d (progress %.3f, %s): last lr %.3g = %.1f%% of the peak, '
                     '%s samples/s', self.step, schedule['progress'], schedule['mode'], self.last_lr or 0.0,
                     100 * (schedule['last_lr_ratio'] or 0.0), schedule['samples_per_s'])
        return {**last, 'schedule': schedule}


# -- command line -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='train', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument('--data', required=True, help='directory of episode_*.hdf5 files')
    p.add_argument('--out', default=d.out, help=f'run directory (default {d.out})')
    p.add_argument('--preset', default='cpu', choices=PRESETS, help='model preset (default cpu)')
    p.add_argument('--config', help='JSON file of VLAConfig fields applied over the preset')
    p.add_argument('--set', action='append', metavar='KEY=VALUE', help='one VLAConfig field, e.g. --set chunk_size=20')
    p.add_argument('--cameras', default='all',
                   help='extra cameras to use beside the main image: "all" recorded in every episode '
                        '(default), "none", or a comma-separated list such as "wrist"')
    p.add_argument('--clip-path', help='local CLIP ViT-B/32 directory (clip-bert; or $VLA_CLIP_PATH)')
    p.add_argument('--bert-path', help='local BERT directory (clip-bert; or $VLA_BERT_PATH)')
    length = p.add_mutually_exclusive_group()
    length.add_argument('--steps', type=int, help='optimizer steps')
    length.add_argument('--epochs', type=float, help='passes over the training samples (default 10 when --steps is not given)')
    p.add_argument('--batch-size', type=int, default=d.batch_size, help=f'samples per step and process (default {d.batch_size})')
    p.add_argument('--lr', type=float, default=None,
                   help=f'peak learning rate (default: the preset\'s, {PRESET_LR["cpu"]:g} for cpu, '
                        f'{DEFAULT_LR:g} for the presets with pretrained encoders)')
    p.add_argument('--weight-decay', type=float, default=d.weight_decay, help=f'AdamW weight decay (default {d.weight_decay})')
    p.add_argument('--warmup-steps', type=int, default=d.warmup_steps,
                   help=f'linear warmup steps, at most a quarter of the schedule (default {d.warmup_steps})')
    p.add_argument('--min-lr-ratio', type=float, default=d.min_lr_ratio,
                   help=f'learning rate at the end of the schedule / peak, below 0.05 (default {d.min_lr_ratio})')
    p.add_argument('--grad-clip', type=float, default=d.grad_clip, help=f'max gradient norm (default {d.grad_clip})')
    p.add_argument('--ema', type=float, default=d.ema, help='EMA decay of the saved weights, e.g. 0.999 (default off)')
    p.add_argument('--val-fraction', type=float, default=d.val_fraction, help=f'held-out episodes (default {d.val_fraction})')
    p.add_argument('--val-every', type=int, default=d.val_every, help=f'steps between validations (default {d.val_every})')
    p.add_argument('--checkpoint-every', type=int, default=d.checkpoint_every,
                   help=f'steps between checkpoints (default {d.checkpoint_every})')
    p.add_argument('--keep-checkpoints', type=int, default=d.keep_checkpoints, help='periodic checkpoints kept')
    p.add_argument('--log-every', type=int, default=d.log_every, help=f'steps between metric rows (default {d.log_every})')
    p.add_argument('--no-augment', action='store_true', help='turn off image augmentation')
    p.add_argument('--aug-shift', type=float, default=d.aug_shift,
                   help=f'random image shift as a fraction of the image size (default {d.aug_shift})')
    p.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                   help='continue a run (default: OUT/checkpoint) with its optimizer state')
    p.add_argument('--device', default=d.device, help='auto, cpu, cuda or cuda:N (default auto)')
    p.add_argument('--seed', type=int, default=d.seed, help=f'random seed (default {d.seed})')
    p.add_argument('--workers', type=int, default=d.workers, help='DataLoader workers (-1: automatic)')
    p.add_argument('--cache-images', default=d.cache_images, choices=['auto', 'on', 'off'],
                   help='keep resized frames in RAM (auto: when they fit --cache-budget-gb)')
    p.add_argument('--cache-budget-gb', type=float, default=d.cache_budget_gb, help='RAM for the frame cache')
    p.add_argument('--max-minutes', type=float,
                   help='wall-clock budget: the whole schedule (warmup, cosine decay, final checkpoint) fits in '
                        'it, data preparation included; with --steps, whichever ends first')
    p.add_argument('--skip-invalid', action='store_true', help='train on the valid episodes, skipping bad files')
    p.add_argument('--include-failed', action='store_true', help='also learn from episodes with success=False')
    p.add_argument('--threads', type=int, default=d.threads, help='torch CPU threads (0: default)')
    return p


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data, out=args.out, steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else preset_lr(args.preset),
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, min_lr_ratio=args.min_lr_ratio,
        grad_clip=args.grad_clip, ema=args.ema,
        val_fraction=args.val_fraction, val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints, log_every=args.log_every, augment=not args.no_augment,
        aug_shift=args.aug_shift,
        seed=args.seed, device=args.device, workers=args.workers, cache_images=args.cache_images,
        cache_budget_gb=args.cache_budget_gb, max_minutes=args.max_minutes, skip_invalid=args.skip_invalid,
        include_failed=args.include_failed, threads=args.threads)


def run(argv: list[str] | None = None, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Parse ``argv``, train, return the last metrics and the schedule (raises on bad input).

    ``clock`` is the wall clock a ``--max-minutes`` budget is measured on (tests pass a fake one).
    """
    args = build_parser().parse_args(argv)
    cfg = train_config_from_args(args)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dist = init_distributed(cfg.device)
    device = pick_device(cfg.device, dist)
    info = scan_episodes(cfg.data, skip_invalid=cfg.skip_invalid, include_failed=cfg.include_failed)
    for path, why in info.skipped:
        log.warning('skipping %s: %s', path, why)
    out = Path(cfg.out)
    resume_from: Path | None = None
    if args.resume:
        resume_from = resolve_checkpoint(out if args.resume == 'auto' else args.resume)
        if not (resume_from / TRAINING_STATE).is_file():
            raise CheckpointError(f'{resume_from} has no {TRAINING_STATE}; only checkpoints written by `train` resume')
        model_config = VLAConfig.load(resume_from / 'config.json')
        check_matches_data(model_config, info, resume_from)
        saved = read_metadata(resume_from).get('dataset', {})
        if saved.get('fingerprint') and saved['fingerprint'] != info.fingerprint():
            log.warning('resuming on different data than %s was trained on', resume_from)
    else:
        model_config = build_model_config(args, info)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / 'train_config.json', {'train': dataclasses.asdict(cfg),
                                                      'model': model_config.to_dict()}, default=str)
    trainer = Trainer(cfg, model_config, info, dist, device, resume_from, clock=clock)
    if dist.main:
        sched = trainer.schedule
        length = ' or '.join(([f'{sched.total_steps} steps'] if sched.total_steps else [])
                             + ([f'{sched.budget_s / 60:g} min'] if sched.budget_s else []))
        log.info('training %s on %d episodes (%d train / %d val, %d samples) for %s (%s) on %s, %d threads',
                 model_config.preset, len(info.episodes), len(trainer.train_ids), len(trainer.val_ids),
                 len(trainer.train_set), length, sched.mode, device, torch.get_num_threads())
    result = trainer.run()
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        result = run(argv)
    except (DataError, WeightsNotFound, IncompatibleCheckpoint, CheckpointError, ValueError,
            FloatingPointError) as exc:
        print(f'train: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('train: interrupted (the last checkpoint is kept; continue with --resume)', file=sys.stderr)
        return 130
    if int(os.environ.get('RANK', '0')) == 0:
        summary = {k: result.get(k) for k in ('step', 'loss', 'val_loss', 'elapsed_s')}
        sched = result.get('schedule') or {}
        summary.update({k: sched.get(k) for k in ('progress', 'last_lr', 'last_lr_ratio', 'samples_per_s')})
        print(f'train: done {json.dumps(summary)}; checkpoint in {Path(build_parser().parse_args(argv).out) / "checkpoint"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
