"""One training run: ``Trainer`` owns the data, model, optimizer, schedule, loop, validation and
checkpoints of a run (the `train` command in vla_policy.train builds one from its options); ``Dist``
is where this process stands in a DDP run started by torchrun."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vla_common.files import atomic_path
from vla_policy.config import VLAConfig
from vla_policy.dataset import DatasetInfo, EpisodeDataset, collate, load_or_compute_stats, split_episodes
from vla_policy.ema import EMA
from vla_policy.images import augment_images
from vla_policy.metrics_log import MetricsLog
from vla_policy.policy import CheckpointError, VLAPolicy
from vla_policy.sampler import EpochBatchSampler
from vla_policy.schedule import MAX_WARMUP_SHARE, MIN_WARMUP_STEPS, Schedule
from vla_policy.train_config import TrainConfig

log = logging.getLogger('vla_policy.train')
TRAINING_STATE = 'training_state.pt'
BUDGET_PROBE_STEPS = 3  # steps timed (after the first) to check that a time budget is long enough


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

        if model_config.binary_actions is None:  # two-valued action dimensions are classified
            levels = self.stats['action'].get('levels') or [None] * len(info.action_names)
            model_config = model_config.replace(binary_actions={
                name: lv for name, lv in zip(info.action_names, levels) if lv is not None})
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
        if cfg.state_noise > 0:
            gen = torch.Generator(device='cpu').manual_seed(cfg.seed * 999_979 + self.step * 37 + self.dist.rank)
            state = batch['joint_positions']
            std = self.model.state_norm.std.detach().to('cpu', state.dtype)
            batch['joint_positions'] = state + cfg.state_noise * std * torch.randn(state.shape, generator=gen,
                                                                                    dtype=state.dtype)
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
        return {'loss': loss.item(), 'l1': info['l1'], 'mse': info['mse'], 'grad_norm': float(grad_norm), 'lr': lr,
                **({'binary_accuracy': info['binary_accuracy']} if 'binary_accuracy' in info else {})}

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
