"""Offline (ROS-free) closed-loop evaluation of a checkpoint in the simulator.

    ros2 run vla_policy evaluate --checkpoint RUN_DIR/checkpoint --tasks all --episodes 20 --json eval.json

Runs ``episodes`` episodes per task on seeds ``seed .. seed+episodes-1`` (default 1000+,
clear of the demonstration seeds 0..), with the policy's ``select_action`` in the loop, and
reports per-task success with 95% Wilson intervals, mean final reward and episode length,
inference latency, and writes a few rollout GIFs (first success and first failure per task).

This is the ``in-process`` episode runner: the simulator and the policy step in this process,
no ROS.  The results model, JSON, table and GIFs are ``vla_common.evaluation``'s, the same as
``vla evaluate`` (the ``ros`` runner) writes; figures only the ROS graph has (e-stops of the
safety monitor, the controller's rate and overruns, the simulator node's timing) are null here.

The K models of ``vla train --seeds K --out OUT``: ``vla evaluate --checkpoint OUT`` evaluates
each one through ROS and reports the spread across training seeds.  In process, evaluate each
on the same seeds and combine the files (the training seed is read from ``seed_<S>``)::

    for ckpt in OUT/seed_*/checkpoint; do
        ros2 run vla_policy evaluate --checkpoint $ckpt --episodes 10 --json eval/$(basename $(dirname $ckpt)).json
    done
    python -m vla_bringup.comparison_seeds eval/seed_*.json --out eval/policy_seeds.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from vla_common.evaluation import (VIDEO_FRAME_STRIDE, Episode, FirstOutcomeVideos, format_table,
                                   latency_summary, machine_info, run_episodes,
                                   summarize, write_results)

__all__ = ['rollout', 'evaluate_checkpoint', 'format_table', 'build_parser', 'main']


def rollout(env, policy, task: str, seed: int, record_video: bool = False,
            on_tick: Callable[[Any, int], None] | None = None) -> tuple[Episode, list[float]]:
    """One episode with the policy in the loop (the env ends it on success or its time limit,
    so it cannot time out), and the ``select_action`` latency of each tick in ms.

    ``on_tick(env, tick)``, if given, is called after the reset (tick 0) and after every step
    (tick 1, 2, ...): where a probe reads ``env.privileged_state()`` along the episode."""
    start_wall = time.monotonic()
    obs = env.reset(task=task, seed=seed)
    policy.reset()
    if on_tick is not None:
        on_tick(env, 0)
    frames, latencies = [], []
    reward, info, length = 0.0, {'success': False}, 0
    done = False
    while not done:
        if record_video and length % VIDEO_FRAME_STRIDE == 0:
            frames.append(obs['image'])
        start = time.perf_counter()
        action = policy.select_action(obs)
        latencies.append((time.perf_counter() - start) * 1000.0)
        obs, reward, done, info = env.step(action)
        length += 1
        if on_tick is not None:
            on_tick(env, length)
    if record_video:
        frames.append(obs['image'])
    episode = Episode(task, seed, bool(info['success']), float(reward), length,
                      sim_time=round(env.sim_time, 6), wall_time=time.monotonic() - start_wall,
                      timed_out=False, estops=None, frames=frames)
    return episode, latencies


def sim_env_for(config: Any, make_env: Callable[..., Any] | None = None) -> Any:
    """The simulator a policy of ``config`` acts in: images rendered at the recorded size (square:
    the larger side), its cameras, and joint targets or end-effector deltas as it was trained on (its
    action names). ``make_env``: the class or factory to build instead of ``SimEnv``."""
    from vla_sim import SimEnv, action_mode_for
    size = max(config.source_image_size) if config.source_image_size else 224
    return (make_env or SimEnv)(image_size=int(size), cameras=('front', *config.extra_cameras),
                                action_mode=action_mode_for(config.action_names))


def evaluate_checkpoint(checkpoint: str | Path, tasks: list[str], episodes: int, seed: int = 1000,
                        video_dir: Path | None = None, progress: bool = True,
                        inference: dict[str, Any] | None = None,
                        video_root: Path | None = None, traced: bool = True,
                        make_env: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Load ``checkpoint`` and evaluate it on ``tasks``; returns the results JSON
    (``vla_common.evaluation.summarize``, ``runner: "in-process"``).

    ``inference`` overrides inference settings of the config (temporal_ensemble, n_action_steps,
    ensemble_decay).  ``video_root``: the directory GIF paths in the results are relative to.
    ``traced``: predict through frozen TorchScript graphs (the same actions, less CPU time).
    ``make_env``: builds the environment instead of ``SimEnv`` (same keyword arguments), e.g. one
    that adds to the observation (a probe's oracle).
    """
    import torch
    from tqdm import tqdm

    from vla_policy.policy import VLAPolicy
    if episodes < 1:
        raise ValueError(f'--episodes must be >= 1, got {episodes}')
    policy = VLAPolicy.from_pretrained(checkpoint, device='cpu')
    cfg = policy.config
    for key, value in (inference or {}).items():
        if key not in ('temporal_ensemble', 'n_action_steps', 'ensemble_decay'):
            raise ValueError(f'{key} is not an inference setting')
        setattr(cfg, key, value)
    cfg.__post_init__()  # validate the overrides
    eager = policy.trace_for_inference() if traced else 'eager by request'
    env = sim_env_for(cfg, make_env)
    policy.check_compatible(joint_names=env.joint_names, action_dim=len(env.action_low))
    latencies: list[float] = []

    def run_one(task: str, episode_seed: int) -> Episode:
        episode, ticks = rollout(env, policy, task, episode_seed, record_video=video_dir is not None)
        latencies.extend(ticks)
        return episode

    bar = tqdm(total=len(tasks) * episodes, desc='evaluate', unit='ep', disable=not progress)

    def progressed(episode: Episode) -> None:
        bar.update(1)
        bar.set_postfix_str(f'{episode.task} seed {episode.seed}: {"success" if episode.success else "fail"}')

    videos = FirstOutcomeVideos(video_dir, video_root) if video_dir is not None else None
    try:
        with torch.inference_mode():
            results = run_episodes(run_one, tasks, episodes, seed, videos=videos, on_episode=progressed)
    finally:
        bar.close()
        env.close()
    return summarize(
        results, policy=f'checkpoint:{checkpoint}', runner='in-process', episodes_per_task=episodes,
        seed=seed, latency_ms=latency_summary(latencies), machine=machine_info(),
        checkpoint_metadata={k: policy.metadata.get(k) for k in ('step', 'elapsed_s', 'cpu_s', 'metrics')},
        inference={**{k: getattr(cfg, k) for k in ('temporal_ensemble', 'n_action_steps', 'ensemble_decay')},
                   'traced': not eager})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='evaluate', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True,
                   help='checkpoint directory (or a training run directory); for the K models of a '
                        '--seeds run, see the loop above')
    p.add_argument('--tasks', default='all',
                   help='comma-separated task or suite names (tabletop, workbench), or "all" (the cube tasks)')
    p.add_argument('--episodes', type=int, default=10, help='episodes per task (default 10)')
    p.add_argument('--seed', type=int, default=1000, help='first evaluation seed (default 1000)')
    p.add_argument('--json', type=Path, help='write the results JSON here')
    p.add_argument('--videos', type=Path, help='directory for rollout GIFs (first success/failure per task)')
    p.add_argument('--temporal-ensemble', action='store_true', help='blend overlapping chunks every tick')
    p.add_argument('--n-action-steps', type=int, help='queue mode: actions served per predicted chunk')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1: fastest per sample)')
    p.add_argument('--eager', action='store_true',
                   help='run the model in eager PyTorch instead of traced TorchScript graphs (same actions, slower)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from vla_policy.policy import CheckpointError, IncompatibleCheckpoint
    from vla_sim import resolve_tasks
    try:
        tasks = resolve_tasks(args.tasks)
    except ValueError as exc:
        print(f'evaluate: error: {exc}', file=sys.stderr)
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
                                      inference=inference,
                                      video_root=args.json.parent.parent if args.json else None,
                                      traced=not args.eager)
    except (CheckpointError, IncompatibleCheckpoint, ValueError) as exc:
        print(f'evaluate: error: {exc}', file=sys.stderr)
        return 1
    print(format_table(summary))
    if args.json:
        write_results(args.json, summary)
        print(f'results written to {args.json}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
