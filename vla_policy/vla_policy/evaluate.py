"""Offline (ROS-free) closed-loop evaluation of a checkpoint in the simulator.

    ros2 run vla_policy evaluate --checkpoint RUN_DIR/checkpoint --tasks all --episodes 20 --json eval.json

Runs ``episodes`` episodes per task on seeds ``seed .. seed+episodes-1`` (default 1000+,
clear of the demonstration seeds 0..), with the policy's ``select_action`` in the loop, and
reports per-task success with 95% Wilson intervals, mean final reward and episode length,
inference latency, and writes a few rollout GIFs (first success and first failure per task).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_common.files import atomic_write_json, write_gif

VIDEO_STRIDE = 3  # keep every 3rd frame (10 fps GIFs at 30 Hz)


@dataclass
class Rollout:
    task: str
    seed: int
    success: bool
    reward: float  # final dense reward in [0, 1]
    length: int  # control ticks until success or the time limit
    latency_ms: list[float] = field(default_factory=list, repr=False)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def rollout(env, policy, task: str, seed: int, record_video: bool = False) -> Rollout:
    """One episode with the policy in the loop (the env ends it on success or time limit)."""
    obs = env.reset(task=task, seed=seed)
    policy.reset()
    frames, latencies = [], []
    reward, info, length = 0.0, {'success': False}, 0
    done = False
    while not done:
        if record_video and length % VIDEO_STRIDE == 0:
            frames.append(obs['image'])
        start = time.perf_counter()
        action = policy.select_action(obs)
        latencies.append((time.perf_counter() - start) * 1000.0)
        obs, reward, done, info = env.step(action)
        length += 1
    if record_video:
        frames.append(obs['image'])
    return Rollout(task, seed, bool(info['success']), float(reward), length, latencies, frames)


def summarize(rollouts: list[Rollout], policy: str, episodes: int, seed: int) -> dict[str, Any]:
    """Results JSON in the DESIGN.md shape."""
    from vla_common.stats import rate_summary
    tasks = {}
    for task in dict.fromkeys(r.task for r in rollouts):
        rs = [r for r in rollouts if r.task == task]
        entry = rate_summary(sum(r.success for r in rs), len(rs))
        entry.update(mean_reward=round(float(np.mean([r.reward for r in rs])), 4),
                     mean_length=round(float(np.mean([r.length for r in rs])), 2), estops=0)
        tasks[task] = entry
    overall = rate_summary(sum(r.success for r in rollouts), len(rollouts))
    overall['estops'] = 0
    lat = np.concatenate([r.latency_ms for r in rollouts]) if rollouts else np.zeros(0)
    latency = ({'p50': round(float(np.percentile(lat, 50)), 3), 'p99': round(float(np.percentile(lat, 99)), 3),
                'mean': round(float(lat.mean()), 3), 'n': int(lat.size)} if lat.size else {})
    return {'policy': policy, 'episodes_per_task': episodes, 'seed': seed, 'tasks': tasks, 'overall': overall,
            'latency_ms': latency, 'control_rate_hz': None,
            'episodes': [{k: v for k, v in asdict(r).items() if k not in ('frames', 'latency_ms')} for r in rollouts]}


def evaluate_checkpoint(checkpoint: str | Path, tasks: list[str], episodes: int, seed: int = 1000,
                        video_dir: Path | None = None, progress: bool = True,
                        inference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load ``checkpoint`` and evaluate it on ``tasks``; returns the results JSON.

    ``inference`` overrides inference settings of the config (temporal_ensemble, n_action_steps,
    ensemble_decay).
    """
    import torch
    from tqdm import tqdm

    from vla_policy.policy import VLAPolicy
    from vla_sim import SimEnv
    policy = VLAPolicy.from_pretrained(checkpoint, device='cpu')
    cfg = policy.config
    for key, value in (inference or {}).items():
        if key not in ('temporal_ensemble', 'n_action_steps', 'ensemble_decay'):
            raise ValueError(f'{key} is not an inference setting')
        setattr(cfg, key, value)
    cfg.__post_init__()  # validate the overrides
    size = cfg.source_image_size[0] if cfg.source_image_size else 224
    if cfg.source_image_size and cfg.source_image_size[0] != cfg.source_image_size[1]:
        size = max(cfg.source_image_size)  # the simulator renders square images
    env = SimEnv(image_size=int(size), cameras=('front', *cfg.extra_cameras))
    policy.check_compatible(joint_names=env.joint_names, action_dim=len(env.action_low))
    rollouts = []
    bar = tqdm(total=len(tasks) * episodes, desc='evaluate', unit='ep', disable=not progress)
    try:
        with torch.inference_mode():
            for task in tasks:
                saved: set[bool] = set()
                for i in range(episodes):
                    r = rollout(env, policy, task, seed + i, record_video=video_dir is not None)
                    if video_dir is not None and r.success not in saved:
                        write_gif(r.frames, video_dir / f'{task}_{"success" if r.success else "failure"}_seed{r.seed}.gif',
                                  fps=30.0 / VIDEO_STRIDE)
                        saved.add(r.success)
                    r.frames = []
                    rollouts.append(r)
                    bar.update(1)
                    bar.set_postfix_str(f'{task} seed {r.seed}: {"success" if r.success else "fail"}')
    finally:
        bar.close()
        env.close()
    summary = summarize(rollouts, f'checkpoint:{checkpoint}', episodes, seed)
    summary['checkpoint_metadata'] = {k: policy.metadata.get(k) for k in ('step', 'elapsed_s', 'cpu_s', 'metrics')}
    summary['inference'] = {k: getattr(cfg, k) for k in ('temporal_ensemble', 'n_action_steps', 'ensemble_decay')}
    return summary


def format_table(summary: dict[str, Any]) -> str:
    lines = [f'{"task":<22}{"success":>12}{"95% CI":>16}{"reward":>9}{"length":>9}']
    for name, t in list(summary['tasks'].items()) + [('overall', summary['overall'])]:
        rate = f'{t["successes"]}/{t["n"]} {t["success_rate"]:.0%}'
        ci = f'[{t["ci95"][0]:.2f}, {t["ci95"][1]:.2f}]'
        reward = f'{t["mean_reward"]:.2f}' if 'mean_reward' in t else ''
        length = f'{t["mean_length"]:.0f}' if 'mean_length' in t else ''
        lines.append(f'{name:<22}{rate:>12}{ci:>16}{reward:>9}{length:>9}')
    lat = summary.get('latency_ms') or {}
    if lat:
        lines.append(f'select_action latency: p50 {lat["p50"]:.2f} ms, p99 {lat["p99"]:.2f} ms')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='evaluate', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True, help='checkpoint directory (or a training run directory)')
    p.add_argument('--tasks', default='all', help='comma-separated task names or "all"')
    p.add_argument('--episodes', type=int, default=10, help='episodes per task (default 10)')
    p.add_argument('--seed', type=int, default=1000, help='first evaluation seed (default 1000)')
    p.add_argument('--json', type=Path, help='write the results JSON here')
    p.add_argument('--videos', type=Path, help='directory for rollout GIFs (first success/failure per task)')
    p.add_argument('--temporal-ensemble', action='store_true', help='blend overlapping chunks every tick')
    p.add_argument('--n-action-steps', type=int, help='queue mode: actions served per predicted chunk')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1: fastest per sample)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from vla_policy.policy import CheckpointError, IncompatibleCheckpoint
    from vla_sim import TASKS
    tasks = list(TASKS) if args.tasks == 'all' else [t for t in args.tasks.split(',') if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        print(f'evaluate: error: unknown task(s) {unknown}; valid: {", ".join(TASKS)} or "all"', file=sys.stderr)
        return 1
    if args.episodes < 1:
        print(f'evaluate: error: --episodes must be >= 1, got {args.episodes}', file=sys.stderr)
        return 1
    torch.set_num_threads(max(1, args.threads))
    try:
        inference: dict[str, Any] = {}
        if args.temporal_ensemble:
            inference['temporal_ensemble'] = True
        if args.n_action_steps is not None:
            inference['n_action_steps'] = args.n_action_steps
        summary = evaluate_checkpoint(args.checkpoint, tasks, args.episodes, args.seed, args.videos,
                                      inference=inference)
    except (CheckpointError, IncompatibleCheckpoint, ValueError) as exc:
        print(f'evaluate: error: {exc}', file=sys.stderr)
        return 1
    print(format_table(summary))
    if args.json:
        atomic_write_json(args.json, summary)
        print(f'results written to {args.json}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
