"""Closed-loop evaluation through the ROS graph and its results JSON (see DESIGN.md)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vla_bringup.episodes import EpisodeResult, EpisodeRunner
from vla_common.files import write_gif
from vla_common.stats import rate_summary

VIDEO_FRAME_STRIDE = 3  # keep every 3rd frame of a rollout (10 fps GIFs at 30 Hz)


def evaluate_tasks(runner: EpisodeRunner, tasks: Sequence[str], episodes: int, seed: int,
                   on_episode: Callable[[EpisodeResult], None] | None = None,
                   wall_timeout: float = 120.0, video_dir: Path | None = None,
                   video_root: Path | None = None) -> list[EpisodeResult]:
    """``episodes`` episodes per task on seeds ``seed .. seed + episodes - 1`` (same for every task).

    With ``video_dir``, the first success and the first failure of each task are written as
    GIFs, their paths stored relative to ``video_root`` (the run directory) in ``result.video``.
    """
    runner.capture_every = VIDEO_FRAME_STRIDE if video_dir is not None else 0
    results = []
    for task in tasks:
        saved: set[bool] = set()
        for i in range(episodes):
            result = runner.run_episode(task, seed + i, wall_timeout=wall_timeout)
            if video_dir is not None and result.success not in saved and result.frames:
                outcome = 'success' if result.success else 'failure'
                path = write_gif(result.frames, video_dir / f'{task}_{outcome}_seed{result.seed}.gif',
                                 fps=30.0 / VIDEO_FRAME_STRIDE)
                result.video = str(path.relative_to(video_root) if video_root else path)
                saved.add(result.success)
            result.frames = []
            results.append(result)
            if on_episode is not None:
                on_episode(result)
    return results


def latency_summary(samples: Sequence[float]) -> dict:
    """p50/p99 (ms) of the controller's per-tick inference latencies, with the samples."""
    if not samples:
        return {}
    values = np.asarray(samples, dtype=np.float64)
    return {'p50': round(float(np.percentile(values, 50)), 3),
            'p99': round(float(np.percentile(values, 99)), 3),
            'mean': round(float(values.mean()), 3), 'n': int(values.size),
            'samples': [round(float(v), 3) for v in values]}


def summarize(results: Sequence[EpisodeResult], policy: str, episodes_per_task: int, seed: int,
              latency_ms: dict | None = None, control_rate_hz: float | None = None) -> dict:
    """The results JSON: per task and overall success with 95% Wilson intervals."""
    tasks: dict[str, dict] = {}
    for task in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == task]
        entry = rate_summary(sum(r.success for r in rs), len(rs))
        entry.update(mean_reward=round(sum(r.reward for r in rs) / len(rs), 4),
                     mean_length=round(sum(r.length for r in rs) / len(rs), 2),
                     estops=sum(r.estops for r in rs),
                     timeouts=sum(r.timed_out for r in rs))
        tasks[task] = entry
    overall = rate_summary(sum(r.success for r in results), len(results))
    overall['estops'] = sum(r.estops for r in results)
    return {'policy': policy, 'episodes_per_task': episodes_per_task, 'seed': seed,
            'tasks': tasks, 'overall': overall,
            'latency_ms': latency_ms or {}, 'control_rate_hz': control_rate_hz,
            'episodes': [r.to_json() for r in results]}


def machine_info() -> dict:
    """The CPU the figures were measured on: torch's kernel level (``AVX2``, ``AVX512``, ...,
    restricted by ``ATEN_CPU_CAPABILITY``) and the cores this process may use."""
    import os
    try:
        import torch
        capability = str(torch.backends.cpu.get_cpu_capability())
    except ImportError:
        capability = 'unknown (no torch)'
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return {'cpu_capability': capability, 'cores': cores,
            'aten_cpu_capability': os.environ.get('ATEN_CPU_CAPABILITY', ''),
            'onednn_max_cpu_isa': os.environ.get('ONEDNN_MAX_CPU_ISA', '')}


def machine_text(machine: dict | None) -> str:
    if not machine:
        return 'unknown CPU'
    forced = ', '.join(f'{k.upper()}={v}' for k, v in machine.items()
                       if k in ('aten_cpu_capability', 'onednn_max_cpu_isa') and v)
    return (f'CPU {machine.get("cpu_capability", "?")}, {machine.get("cores", "?")} core(s)'
            + (f' ({forced})' if forced else ''))


def simulation_summary(rtf: float | None, status: dict | None, sim_state: dict | None) -> dict:
    """Which timing the simulator ran with and, in lock-step, the ticks it stepped on its timeout
    (``silent``: per topic, the ticks it left unanswered)."""
    if rtf is not None:
        return {'mode': 'real_time', 'real_time_factor': rtf}
    silent = {k.split(': ', 1)[1]: int(v) for k, v in (sim_state or {}).items()
              if k.startswith('lockstep_silent: ')}
    return {'mode': 'lockstep', 'timeouts': int((status or {}).get('timeouts', 0)),
            'ticks': int((sim_state or {}).get('ticks', 0)), 'silent': silent}


def simulation_text(simulation: dict | None) -> str:
    if not simulation:
        return 'simulation timing not recorded'
    if simulation.get('mode') == 'real_time':
        return f'real time x{simulation.get("real_time_factor", 1.0):g}'
    return (f'lock-step ({simulation.get("timeouts", 0)} tick(s) stepped on the timeout'
            + (f'; unanswered: {simulation["silent"]}' if simulation.get('silent') else '') + ')')


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


def controller_text(controller: dict | None) -> str:
    return ', '.join(f'{k.replace("_", " ")} {v}' for k, v in (controller or {}).items()) or 'n/a'


def format_table(summary: dict) -> str:
    """A plain-text table of the per-task success rates."""
    lines = [f'{"task":<22}{"success":>10}{"95% CI":>16}{"reward":>9}{"length":>9}{"estops":>8}']
    rows = list(summary['tasks'].items()) + [('overall', summary['overall'])]
    for name, t in rows:
        ci = f'[{t["ci95"][0]:.2f}, {t["ci95"][1]:.2f}]'
        rate = f'{t["successes"]}/{t["n"]} {t["success_rate"]:.0%}'
        reward = f'{t["mean_reward"]:.2f}' if 'mean_reward' in t else ''
        length = f'{t["mean_length"]:.0f}' if 'mean_length' in t else ''
        lines.append(f'{name:<22}{rate:>10}{ci:>16}{reward:>9}{length:>9}{t["estops"]:>8}')
    if 'simulation' in summary or 'machine' in summary:
        lines.append(f'simulation: {simulation_text(summary.get("simulation"))}; '
                     f'{machine_text(summary.get("machine"))}')
    controller = summary.get('controller') or {}
    if controller:
        lines.append(f'controller: {controller_text(controller)}')
    for episode in summary.get('episodes', []):
        if episode.get('note'):
            lines.append(f'{episode["task"]} seed {episode["seed"]}: {episode["note"]}')
    return '\n'.join(lines)
