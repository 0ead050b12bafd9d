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

Training-seed variance: ``--seeds K`` trains K models on the same data, with seeds SEED ..
SEED+K-1, into ``OUT/seed_<S>/`` (each a run directory as above; ``--max-minutes`` is per model)
and writes ``OUT/seeds.json`` (each model's final losses and checkpoint); evaluate each
checkpoint on the same evaluation seeds to see the spread between training seeds beside the
per-episode intervals.

Every option but the model's (``--preset``, ``--config``, ``--set``, ``--cameras``, ``--clip-path``,
``--bert-path``) and ``--resume`` is a field of ``TrainConfig`` (vla_policy.train_config), from
which the options are generated; the run itself is a ``Trainer`` (vla_policy.trainer).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vla_common.files import atomic_write_json
from vla_policy.config import VLAConfig, preset_lr
from vla_policy.dataclass_cli import add_options, values_from_args
from vla_policy.dataset import DataError, scan_episodes
from vla_policy.encoders import WeightsNotFound
from vla_policy.policy import CheckpointError, IncompatibleCheckpoint, read_metadata, resolve_checkpoint
from vla_policy.train_config import TrainConfig, add_model_options, build_model_config, check_matches_data
from vla_policy.trainer import TRAINING_STATE, Dist, Trainer, init_distributed, pick_device

__all__ = ['TrainConfig', 'Trainer', 'Dist', 'TRAINING_STATE', 'build_model_config', 'check_matches_data',
           'build_parser', 'train_config_from_args', 'run', 'main']

log = logging.getLogger('vla_policy.train')


def build_parser() -> argparse.ArgumentParser:
    """The `train` options: TrainConfig's fields, the model options and --resume."""
    p = argparse.ArgumentParser(prog='train', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, TrainConfig, ['data', 'out'])
    add_model_options(p.add_argument_group('model (preset, then --config, then --set; sizes from the data)'))
    training = p.add_argument_group('training')
    add_options(training, TrainConfig,
                [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ('data', 'out')])
    training.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                          help='continue a run (default: OUT/checkpoint) with its optimizer state')
    training.add_argument('--seeds', type=int, default=1, metavar='K',
                          help='train K models on the same data (seeds SEED .. SEED+K-1) into '
                               'OUT/seed_<S>/, with OUT/seeds.json listing them (default 1: one model '
                               'in OUT)')
    return p


def run_seeds(argv: list[str], args: argparse.Namespace, clock: Callable[[], float]) -> dict[str, Any]:
    """``--seeds K``: K runs of :func:`run` that differ only in --seed and --out."""
    if args.resume:
        raise ValueError('--seeds and --resume do not mix: resume one model with --out OUT/seed_<S> --resume')
    if int(os.environ.get('WORLD_SIZE', '1')) > 1:
        raise ValueError('--seeds trains the models one after the other; do not start it under torchrun')
    out, first = Path(args.out), int(args.seed)
    rest = _without(argv, {'--seeds', '--seed', '--out'})
    runs = []
    for seed in range(first, first + args.seeds):
        log.info('training seed %d (%d of %d)', seed, seed - first + 1, args.seeds)
        result = run([*rest, '--seed', str(seed), '--out', str(out / f'seed_{seed}')], clock=clock)
        runs.append({'seed': seed, 'run': f'seed_{seed}', 'checkpoint': f'seed_{seed}/checkpoint',
                     **{k: result.get(k) for k in ('step', 'loss', 'val_loss', 'elapsed_s')}})
    summary = {'seeds': [r['seed'] for r in runs], 'runs': runs}
    losses = [r['val_loss'] for r in runs if r['val_loss'] is not None]
    if losses:
        summary['val_loss'] = {'mean': float(sum(losses) / len(losses)), 'min': min(losses),
                               'max': max(losses)}
    atomic_write_json(out / 'seeds.json', summary)
    return {**runs[-1], 'seeds': summary}


def _without(argv: list[str], options: set[str]) -> list[str]:
    """``argv`` without the given options and their values (``--opt V`` or ``--opt=V``)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split('=', 1)[0]
        if name in options:
            skip = '=' not in item
            continue
        kept.append(item)
    return kept


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed options; --lr defaults to the preset's learning rate."""
    values = values_from_args(TrainConfig, args)
    if values['lr'] is None:
        values['lr'] = preset_lr(args.preset)
    return TrainConfig(**values)


def run(argv: list[str] | None = None, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Parse ``argv``, train, return the last metrics and the schedule (raises on bad input).

    ``clock`` is the wall clock a ``--max-minutes`` budget is measured on (tests pass a fake one).
    """
    args = build_parser().parse_args(argv)
    if args.seeds < 1:
        raise ValueError(f'--seeds must be >= 1, got {args.seeds}')
    if args.seeds > 1:
        return run_seeds(list(sys.argv[1:] if argv is None else argv), args, clock)
    cfg = train_config_from_args(args)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dist = init_distributed(cfg.device)
    device = pick_device(cfg.device, dist)
    info = scan_episodes(cfg.data, skip_invalid=cfg.skip_invalid, include_failed=cfg.include_failed,
                         action_space=cfg.action_space)
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
        args = build_parser().parse_args(argv)
        where = (f'{args.seeds} models in {Path(args.out)}/seed_*/checkpoint (seeds.json)' if args.seeds > 1
                 else f'checkpoint in {Path(args.out) / "checkpoint"}')
        print(f'train: done {json.dumps(summary)}; {where}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
