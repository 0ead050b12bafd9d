"""The results of a closed-loop evaluation, whichever runner produced them (ROS-free, torch-free).

Two episode runners feed this module: ``vla_policy.evaluate`` steps the simulator and the policy
in one process (``runner: "in-process"``), ``vla_bringup.evaluation`` drives the nodes over ROS
(``runner: "ros"``).  Each turns a (task, seed) into an ``Episode``; ``run_episodes`` walks the
seeds and keeps the first success and first failure of each task as GIFs; ``summarize`` builds the
results JSON (DESIGN.md), ``format_table`` its text and ``write_results`` writes it.

The results JSON has the same keys from both runners.  A figure a runner cannot observe is
``null``, not an invented value: in-process there is no safety monitor (``estops``), no
controller node (``controller``), no clock to keep (``control_rate_hz``) and no simulator node
whose timing could differ (``simulation``).  ``timeouts`` counts episodes whose end was never
seen (a hung graph, a silent lock-step topic); in-process every episode ends on the task's time
limit, so it is 0 there.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_common.files import atomic_write_json, write_gif
from vla_common.stats import rate_summary

RUNNERS = ('in-process', 'ros')
#: the keys of the results JSON, from either runner (a runner may add its own after these)
RESULT_KEYS = ('policy', 'runner', 'episodes_per_task', 'seed', 'tasks', 'overall', 'latency_ms',
               'control_rate_hz', 'simulation', 'controller', 'machine', 'episodes')
TASK_KEYS = ('n', 'successes', 'success_rate', 'ci95', 'mean_reward', 'mean_length', 'estops',
             'timeouts')
OVERALL_KEYS = ('n', 'successes', 'success_rate', 'ci95', 'estops', 'timeouts')
EPISODE_KEYS = ('task', 'seed', 'success', 'reward', 'length', 'sim_time', 'wall_time',
                'timed_out', 'estops', 'note', 'video')
#: keep every 3rd camera frame of a rollout for its GIF (10 fps GIFs of the 30 Hz control loop)
VIDEO_FRAME_STRIDE = 3
VIDEO_FPS = 30.0 / VIDEO_FRAME_STRIDE


@dataclass
class Episode:
    """One evaluation episode as the results JSON lists it (``frames`` is not serialised)."""

    task: str
    seed: int
    success: bool
    reward: float  # final dense reward of the task, in [0, 1]
    length: int  # control ticks until success or the time limit
    sim_time: float | None = None  # simulated seconds
    wall_time: float | None = None  # wall-clock seconds, reset included
    timed_out: bool = False  # its end was never seen (see ``note``)
    estops: int | None = None  # emergency stops latched during it; None: no monitor to count them
    note: str = ''  # why it timed out
    video: str | None = None  # its rollout GIF, when one was written
    frames: list = field(default_factory=list, repr=False)  # camera frames for the GIF

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != 'frames'}


class FirstOutcomeVideos:
    """Writes the first success and the first failure of each task as a GIF,
    ``video_dir/<task>_<success|failure>_seed<seed>.gif``, and stores its path in
    ``episode.video``: relative to ``video_root`` (the run directory, which the report resolves
    it against) when it lies under it, else absolute."""

    def __init__(self, video_dir: str | Path, video_root: str | Path | None = None,
                 fps: float = VIDEO_FPS) -> None:
        self.video_dir = Path(video_dir)
        self.video_root = Path(video_root) if video_root is not None else None
        self.fps = fps
        self._saved: set[tuple[str, bool]] = set()

    def wants(self, task: str, success: bool) -> bool:
        return (task, bool(success)) not in self._saved

    def keep(self, episode: Episode) -> Path | None:
        """Write ``episode``'s frames if it is the first of its outcome for its task."""
        if not episode.frames or not self.wants(episode.task, episode.success):
            return None
        outcome = 'success' if episode.success else 'failure'
        path = write_gif(episode.frames, self.video_dir / f'{episode.task}_{outcome}_seed{episode.seed}.gif',
                         fps=self.fps)
        self._saved.add((episode.task, bool(episode.success)))
        episode.video = str(self._relative(path))
        return path

    def _relative(self, path: Path) -> Path:
        if self.video_root is not None:
            try:
                return path.resolve().relative_to(self.video_root.resolve())
            except ValueError:
                pass
        return path.resolve()


def run_episodes(run_one: Callable[[str, int], Episode], tasks: Sequence[str], episodes: int,
                 seed: int, videos: FirstOutcomeVideos | None = None,
                 on_episode: Callable[[Episode], None] | None = None) -> list[Episode]:
    """``episodes`` episodes per task on seeds ``seed .. seed + episodes - 1`` (the same seeds for
    every task, so two evaluations pair up episode by episode); frames are dropped once the
    first-outcome GIFs are written."""
    if episodes < 1:
        raise ValueError(f'--episodes must be >= 1, got {episodes}')
    results = []
    for task in tasks:
        for i in range(episodes):
            episode = run_one(task, seed + i)
            if videos is not None:
                videos.keep(episode)
            episode.frames = []
            results.append(episode)
            if on_episode is not None:
                on_episode(episode)
    return results


def latency_summary(samples: Sequence[float]) -> dict:
    """p50/p99/mean (ms) of per-tick inference latencies, with the samples (the report's
    histogram); ``{}`` when there are none."""
    if len(samples) == 0:
        return {}
    values = np.asarray(samples, dtype=np.float64)
    return {'p50': round(float(np.percentile(values, 50)), 3),
            'p99': round(float(np.percentile(values, 99)), 3),
            'mean': round(float(values.mean()), 3), 'n': int(values.size),
            'samples': [round(float(v), 3) for v in values]}


def _count(values: Sequence[int | None]) -> int | None:
    """A sum of counts, None when any of them was not observed."""
    return None if any(v is None for v in values) else int(sum(values))


def _rate_entry(episodes: Sequence[Episode]) -> dict:
    entry = rate_summary(sum(bool(e.success) for e in episodes), len(episodes))
    entry['estops'] = _count([e.estops for e in episodes])
    entry['timeouts'] = sum(bool(e.timed_out) for e in episodes)
    return entry


def summarize(episodes: Sequence[Episode], *, policy: str, runner: str, episodes_per_task: int,
              seed: int, latency_ms: dict | None = None, control_rate_hz: float | None = None,
              simulation: dict | None = None, controller: dict | None = None,
              machine: dict | None = None, **extra) -> dict:
    """The results JSON: per task and overall success with 95% Wilson intervals, mean final
    reward and length per task, e-stops and timeouts, latency, the runner's figures (None where
    it has none) and ``extra`` keys of the runner (e.g. the checkpoint's metadata)."""
    if runner not in RUNNERS:
        raise ValueError(f'runner must be one of {RUNNERS}, got {runner!r}')
    tasks: dict[str, dict] = {}
    for task in dict.fromkeys(e.task for e in episodes):
        group = [e for e in episodes if e.task == task]
        entry = _rate_entry(group)
        entry['mean_reward'] = round(float(np.mean([e.reward for e in group])), 4)
        entry['mean_length'] = round(float(np.mean([e.length for e in group])), 2)
        tasks[task] = {k: entry[k] for k in TASK_KEYS}
    return {'policy': policy, 'runner': runner, 'episodes_per_task': episodes_per_task,
            'seed': seed, 'tasks': tasks, 'overall': _rate_entry(episodes),
            'latency_ms': latency_ms or {}, 'control_rate_hz': control_rate_hz,
            'simulation': simulation, 'controller': controller, 'machine': machine,
            **extra, 'episodes': [e.to_json() for e in episodes]}


def write_results(path: str | Path, summary: dict) -> Path:
    """The results JSON, written atomically (a reader never sees half of it)."""
    return atomic_write_json(path, summary)


# -- text -------------------------------------------------------------------------------------
def machine_info() -> dict:
    """The CPU the figures were measured on: torch's kernel level (``AVX2``, ``AVX512``, ...,
    restricted by ``ATEN_CPU_CAPABILITY``) and the cores this process may use.  Imports torch
    when it is installed (this module does not need it otherwise)."""
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


def simulation_text(simulation: dict | None, runner: str | None = None) -> str:
    if not simulation:
        if runner == 'in-process':
            return 'in-process (stepped by the evaluator, no ROS)'
        return 'simulation timing not recorded'
    if simulation.get('mode') == 'real_time':
        return f'real time x{simulation.get("real_time_factor", 1.0):g}'
    before = simulation.get('timeouts_before_episodes')
    return (f'lock-step ({simulation.get("timeouts", 0)} tick(s) stepped on the timeout'
            + (f' in the episodes, {before} before the first' if before is not None else '')
            + (f'; unanswered since start: {simulation["silent"]}' if simulation.get('silent') else '')
            + ')')


def controller_text(controller: dict | None) -> str:
    return ', '.join(f'{k.replace("_", " ")} {v}' for k, v in (controller or {}).items()) or 'n/a'


def format_table(summary: dict) -> str:
    """The results as plain text: per-task success, then latency, timing, CPU and notes."""
    lines = [f'{"task":<22}{"success":>12}{"95% CI":>16}{"reward":>9}{"length":>9}{"estops":>8}']
    for name, t in list(summary['tasks'].items()) + [('overall', summary['overall'])]:
        rate = f'{t["successes"]}/{t["n"]} {t["success_rate"]:.0%}'
        ci = f'[{t["ci95"][0]:.2f}, {t["ci95"][1]:.2f}]'
        reward = f'{t["mean_reward"]:.2f}' if t.get('mean_reward') is not None else ''
        length = f'{t["mean_length"]:.0f}' if t.get('mean_length') is not None else ''
        estops = '-' if t.get('estops') is None else str(t['estops'])
        lines.append(f'{name:<22}{rate:>12}{ci:>16}{reward:>9}{length:>9}{estops:>8}')
    lat = summary.get('latency_ms') or {}
    if lat.get('p50') is not None:
        what = 'select_action' if summary.get('runner') == 'in-process' else 'inference'
        lines.append(f'{what} latency: p50 {lat["p50"]:.2f} ms, p99 {lat["p99"]:.2f} ms')
    lines.append(f'simulation: {simulation_text(summary.get("simulation"), summary.get("runner"))}; '
                 f'{machine_text(summary.get("machine"))}')
    if summary.get('controller'):
        lines.append(f'controller: {controller_text(summary["controller"])}')
    for episode in summary.get('episodes', []):
        if episode.get('note'):
            lines.append(f'{episode["task"]} seed {episode["seed"]}: {episode["note"]}')
    return '\n'.join(lines)
