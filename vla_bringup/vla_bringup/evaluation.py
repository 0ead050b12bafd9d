"""Closed-loop evaluation through the ROS graph: the ``ros`` episode runner behind
``vla evaluate``.

``evaluate`` starts the scenario on a private ROS domain and runs the episodes with an
``EpisodeRunner``; the results model, the results JSON, its table and the rollout GIFs are
``vla_common.evaluation``'s, shared with the in-process runner (``vla_policy.evaluate``).  This
module adds what only the ROS runner observes: the simulator's timing and the controller's
overruns, read from their diagnostics.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vla_bringup.commands import CommandError
from vla_bringup.scenarios import build_scenario
from vla_common.evaluation import (VIDEO_FRAME_STRIDE, FirstOutcomeVideos, latency_summary,
                                   machine_info, run_episodes, summarize)
from vla_common.launching import NodeGroup, domain_held, isolated_ros_env


def evaluate(policy: str | None, checkpoint: str | None, tasks: list[str], episodes: int,
             seed: int, rtf: float | None, episode_timeout: float, video_dir: Path | None = None,
             video_root: Path | None = None, sequential=None, image_size: int | None = None) -> dict:
    """Start the scenario on a private ROS domain, run the episodes, return the summary.

    A checkpoint runs the ``deploy`` scenario (controller behind the gate and monitor), the
    expert the ``sim`` scenario; both on the same seeds.  ``rtf`` None: lock-step simulation;
    a number: real time at that factor.  ``sequential`` (a
    :class:`vla_bringup.comparison.SequentialPlan`): evaluate its pairs in its order until its
    test decides, instead of ``episodes`` per task.
    """
    if episodes < 1:
        raise CommandError(f'--episodes must be >= 1, got {episodes}')
    if rtf is not None and rtf <= 0:
        raise CommandError(f'--real-time-factor must be > 0, got {rtf}')
    if image_size is not None and image_size < 8:
        raise CommandError(f'--image-size must be >= 8 pixels, got {image_size}')
    # the simulator renders at image_size, else (a checkpoint, see scenarios.image_size) at the
    # size the policy was trained on
    values = {'task': tasks[0], 'seed': seed, 'real_time_factor': rtf or 1.0,
              'lockstep': rtf is None, 'image_size': image_size or ''}
    if checkpoint is not None:
        from vla_policy.checkpoint_files import CheckpointError, resolve_checkpoint
        try:
            values['checkpoint'] = str(resolve_checkpoint(checkpoint).resolve())
        except CheckpointError as exc:
            raise CommandError(str(exc)) from exc
    env = isolated_ros_env()
    specs = build_scenario('deploy' if checkpoint else 'sim', values)
    from tqdm import tqdm

    from vla_bringup.episodes import EpisodeRunner, SimUnavailable, private_context
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    with domain_held(env), NodeGroup(specs, env=env) as group:
        context = private_context(int(env['ROS_DOMAIN_ID']))
        runner = EpisodeRunner(context=context)
        try:
            try:
                runner.wait_for_sim(timeout=60.0)
                if checkpoint is not None:
                    runner.wait_for_controller(timeout=120.0)
            except SimUnavailable as exc:
                logs = '\n'.join(f'--- {p.spec.name}:\n{p.output(2000)}' for p in group.processes)
                raise CommandError(f'{exc}\n{logs}') from exc
            total = len(sequential.order) if sequential is not None else len(tasks) * episodes
            bar = tqdm(total=total, desc=f'evaluate {policy or checkpoint}',
                       unit='ep', file=sys.stderr)

            def progress(result) -> None:
                bar.update(1)
                bar.set_postfix_str(f'{result.task} seed {result.seed}: '
                                    f'{"success" if result.success else "fail"}')
                dead = group.dead()
                if dead:
                    raise CommandError(f'node {dead[0].spec.name} died:\n{dead[0].output()}')

            videos = FirstOutcomeVideos(video_dir, video_root) if video_dir is not None else None
            runner.capture_every = VIDEO_FRAME_STRIDE if videos is not None else 0
            if sequential is None:
                results = run_episodes(
                    lambda task, seed: runner.run_episode(task, seed, wall_timeout=episode_timeout),
                    tasks, episodes, seed, videos=videos, on_episode=progress)
            else:
                def one(task: str, seed: int):
                    episode = runner.run_episode(task, seed, wall_timeout=episode_timeout)
                    if videos is not None:
                        videos.keep(episode)
                    episode.frames = []
                    progress(episode)
                    return episode
                results = sequential.run(one)
            bar.close()
        finally:
            runner.close()
            context.try_shutdown()
    rates = runner.control_rates
    return summarize(
        results, policy=policy or f'checkpoint:{checkpoint}', runner='ros',
        episodes_per_task=episodes, seed=seed,
        latency_ms=latency_summary(runner.latency_samples),
        control_rate_hz=round(float(np.median(rates)), 2) if rates else None,
        simulation=simulation_summary(rtf, runner.status, runner.sim_state,
                                      runner.timeouts_before_episodes),
        controller=(controller_summary(runner.controller_state, runner.overruns_per_minute)
                    if checkpoint is not None else None),
        machine=machine_info(),
        **({'sequential': sequential.summary()} if sequential is not None else {}))


def simulation_summary(rtf: float | None, status: dict | None, sim_state: dict | None,
                       before: int | None = None) -> dict:
    """Which timing the simulator ran with and, in lock-step, the ticks it stepped on its timeout
    from the first episode on (``before``: the simulator's count at the first episode's reset,
    ticks of its start-up that no episode saw, reported apart; ``silent``: per topic, the ticks
    it left unanswered since it started)."""
    if rtf is not None:
        return {'mode': 'real_time', 'real_time_factor': rtf}
    silent = {k.split(': ', 1)[1]: int(v) for k, v in (sim_state or {}).items()
              if k.startswith('lockstep_silent: ')}
    total = int((status or {}).get('timeouts', 0))
    start_up = min(before, total) if before is not None else 0
    out = {'mode': 'lockstep', 'timeouts': total - start_up,
           'ticks': int((sim_state or {}).get('ticks', 0)), 'silent': silent}
    if before is not None:
        out['timeouts_before_episodes'] = start_up
    return out


def controller_summary(state: dict | None, overruns_per_minute: Sequence[float]) -> dict:
    """The controller's overrun count (ticks that found inference still running) and rate."""
    state = state or {}
    out: dict = {}
    if 'overruns' in state:
        try:
            out['overruns'] = int(state['overruns'])
        except ValueError:
            pass
    if overruns_per_minute:
        out['overruns_per_minute'] = round(float(np.median(overruns_per_minute)), 2)
        out['overruns_per_minute_max'] = round(float(np.max(overruns_per_minute)), 2)
    return out
