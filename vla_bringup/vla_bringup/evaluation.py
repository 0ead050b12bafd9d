"""Closed-loop evaluation through the ROS graph and its results JSON (see DESIGN.md)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from vla_bringup.episodes import EpisodeResult, EpisodeRunner
from vla_sim.stats import rate_summary


def evaluate_tasks(runner: EpisodeRunner, tasks: Sequence[str], episodes: int, seed: int,
                   on_episode: Callable[[EpisodeResult], None] | None = None,
                   wall_timeout: float = 120.0) -> list[EpisodeResult]:
    """``episodes`` episodes per task on seeds ``seed .. seed + episodes - 1`` (same for every task)."""
    results = []
    for task in tasks:
        for i in range(episodes):
            result = runner.run_episode(task, seed + i, wall_timeout=wall_timeout)
            results.append(result)
            if on_episode is not None:
                on_episode(result)
    return results


def summarize(results: Sequence[EpisodeResult], policy: str, episodes_per_task: int, seed: int,
              estops: dict[str, int] | None = None, latency_ms: dict | None = None,
              control_rate_hz: float | None = None) -> dict:
    """The results JSON: per task and overall success with 95% Wilson intervals."""
    estops = estops or {}
    tasks: dict[str, dict] = {}
    for task in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == task]
        entry = rate_summary(sum(r.success for r in rs), len(rs))
        entry.update(mean_reward=round(sum(r.reward for r in rs) / len(rs), 4),
                     mean_length=round(sum(r.length for r in rs) / len(rs), 2),
                     estops=int(estops.get(task, 0)),
                     timeouts=sum(r.timed_out for r in rs))
        tasks[task] = entry
    overall = rate_summary(sum(r.success for r in results), len(results))
    overall['estops'] = int(sum(estops.values()))
    return {'policy': policy, 'episodes_per_task': episodes_per_task, 'seed': seed,
            'tasks': tasks, 'overall': overall,
            'latency_ms': latency_ms or {}, 'control_rate_hz': control_rate_hz,
            'episodes': [r.__dict__ for r in results]}


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
    return '\n'.join(lines)
