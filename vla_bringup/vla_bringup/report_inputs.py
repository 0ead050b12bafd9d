"""The inputs of the evaluation report (``vla report``): a run directory, read and checked.

``load_run(run_dir)`` reads what ``vla_bringup.report``'s docstring lists (the results JSON of
``vla evaluate``, the ``vla train`` log, ``stages.json`` of ``vla demo``, rollout GIFs/MP4s),
checks each against the shape its writer gives it (a malformed one raises ``ReportError``
naming the file and what was expected) and writes a note for each one missing or partly
unusable, which the report shows.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vla_bringup.report_metrics import Metrics, load_metrics, optional_float

SOURCES = ('policy', 'baseline')  # eval/<source>.json
LABELS = {'policy': 'VLA policy', 'baseline': 'scripted baseline'}
METRICS_DIRS = ('checkpoint', '.')  # where under RUN_DIR the training log is looked for
MEDIA_TYPES = {'.gif': 'image/gif', '.mp4': 'video/mp4'}


class ReportError(ValueError):
    """An input the report cannot use; the message names the file and what was expected."""


# -- results JSON -----------------------------------------------------------------------------
def _number(value, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ReportError(f'{where}: {what} must be a finite number, got {value!r}')
    return float(value)


def _rate_entry(entry, what: str, where: str) -> dict:
    """One per-task / overall entry, checked; ``success_rate`` and ``ci95`` derived if absent."""
    from vla_common.stats import wilson_interval
    if not isinstance(entry, dict):
        raise ReportError(f'{where}: {what} must be an object with n and successes, got {entry!r}')
    missing = [k for k in ('n', 'successes') if k not in entry]
    if missing:
        raise ReportError(f'{where}: {what} lacks {", ".join(missing)} '
                          '(expected n, successes, success_rate, ci95, ...)')
    n, k = entry['n'], entry['successes']
    if not (isinstance(n, int) and isinstance(k, int) and 0 <= k <= n):
        raise ReportError(f'{where}: {what} needs integers 0 <= successes <= n, '
                          f'got successes={k!r}, n={n!r}')
    out = dict(entry)
    out['success_rate'] = k / n if n else 0.0
    ci = entry.get('ci95')
    if ci is None:
        out['ci95'] = list(wilson_interval(k, n))
    elif not (isinstance(ci, (list, tuple)) and len(ci) == 2
              and all(isinstance(c, (int, float)) and 0 <= c <= 1 for c in ci) and ci[0] <= ci[1]):
        raise ReportError(f'{where}: {what}.ci95 must be [low, high] within [0, 1], got {ci!r}')
    for key in ('mean_reward', 'mean_length', 'estops', 'timeouts'):
        if out.get(key) is not None:
            out[key] = _number(out[key], f'{what}.{key}', where)
    return out


def load_results(path: Path) -> dict:
    """A results JSON of ``vla evaluate``, checked against the DESIGN.md shape."""
    where = str(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f'{where} is not valid JSON ({exc}); expected the results JSON '
                          'written by `vla evaluate --json`') from exc
    if not isinstance(data, dict) or not isinstance(data.get('tasks'), dict) or not data['tasks']:
        raise ReportError(f'{where}: expected an object with a non-empty "tasks" mapping '
                          '(the results JSON of `vla evaluate --json`)')
    data['tasks'] = {name: _rate_entry(t, f'tasks.{name}', where)
                     for name, t in data['tasks'].items()}
    tasks = data['tasks'].values()
    if 'overall' in data:
        data['overall'] = _rate_entry(data['overall'], 'overall', where)
    else:  # derive it from the tasks
        data['overall'] = _rate_entry(
            {'n': sum(t['n'] for t in tasks), 'successes': sum(t['successes'] for t in tasks),
             'estops': sum(t.get('estops') or 0 for t in tasks)}, 'overall', where)
    total = sum(t['n'] for t in tasks)
    for key in ('mean_reward', 'mean_length'):  # episode-weighted means over the tasks
        if (data['overall'].get(key) is None and total
                and all(t.get(key) is not None for t in tasks)):
            data['overall'][key] = sum(t[key] * t['n'] for t in tasks) / total
    latency = data.get('latency_ms') or {}
    if not isinstance(latency, dict):
        raise ReportError(f'{where}: latency_ms must be an object {{p50, p99, samples}}, '
                          f'got {latency!r}')
    samples = latency.get('samples') or []
    if not isinstance(samples, list):
        raise ReportError(f'{where}: latency_ms.samples must be a list of milliseconds')
    latency['samples'] = [float(s) for s in samples
                          if isinstance(s, (int, float)) and not isinstance(s, bool)
                          and math.isfinite(s) and s >= 0]
    data['latency_ms'] = latency
    episodes = data.get('episodes') or []
    if not isinstance(episodes, list):
        raise ReportError(f'{where}: episodes must be a list of episode objects')
    data['episodes'] = [e for e in episodes if isinstance(e, dict) and 'task' in e]
    return data


# -- stages ----------------------------------------------------------------------------------
def load_stages(path: Path) -> dict[str, dict]:
    """``stages.json`` of ``vla demo``: ``{stage: {seconds, status, command}}``."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f'{path} is not valid JSON ({exc}); expected '
                          '{"stage": {"seconds": s, "status": "..."}}') from exc
    if not isinstance(data, dict):
        raise ReportError(f'{path}: expected an object {{stage: {{seconds, status}}}}, '
                          f'got {type(data).__name__}')
    stages = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ReportError(f'{path}: stage {name!r} must be an object {{seconds, status}}, '
                              f'got {entry!r}')
        stages[str(name)] = {'seconds': optional_float(entry.get('seconds')),
                             'status': str(entry.get('status', '')),
                             'command': str(entry.get('command', ''))}
    return stages


# -- rollout media ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rollout:
    source: str  # 'policy', 'baseline' or '' when only the file name is known
    task: str
    success: bool | None  # None: unknown (a file whose name does not say)
    path: Path
    seed: int | None = None


def _outcome_from_name(name: str) -> bool | None:
    lowered = name.lower()
    if re.search(r'fail', lowered):
        return False
    if re.search(r'succ', lowered):
        return True
    return None


def find_rollouts(run_dir: Path, results: dict[str, dict], tasks: Sequence[str],
                  notes: list[str]) -> list[Rollout]:
    """Rollouts named by episodes of the results, then loose files in ``eval/videos``."""
    rollouts: list[Rollout] = []
    named: set[Path] = set()
    for source, data in results.items():
        for episode in data['episodes']:
            video = episode.get('video')
            if not video:
                continue
            path = (run_dir / str(video)).resolve()
            if not path.is_file():
                notes.append(f'{LABELS[source]} episode {episode.get("task")} seed '
                             f'{episode.get("seed")} names video {video}, which does not exist.')
                continue
            named.add(path)
            rollouts.append(Rollout(source, str(episode['task']), bool(episode.get('success')),
                                    path, episode.get('seed')))
    videos = run_dir / 'eval' / 'videos'
    if videos.is_dir():
        by_length = sorted(tasks, key=len, reverse=True)  # 'pick_red' must not claim 'pick_red_x'
        for path in sorted(videos.rglob('*')):
            if path.suffix.lower() not in MEDIA_TYPES or path.resolve() in named:
                continue
            name = path.relative_to(videos).with_suffix('').as_posix()  # e.g. policy/pick_red_x
            task = next((t for t in by_length if t in name), '')
            source = next((s for s in SOURCES if s in name.lower()), '')
            rollouts.append(Rollout(source, task, _outcome_from_name(name), path.resolve()))
    return rollouts


def pick_rollouts(rollouts: Sequence[Rollout], tasks: Sequence[str]) -> dict[str, list[Rollout]]:
    """Per task, a success and a failure of each source (policy first), as available."""
    picked: dict[str, list[Rollout]] = {}
    for task in tasks:
        chosen = []
        for source in (*SOURCES, ''):
            for outcome in (True, False, None):
                match = next((r for r in rollouts if r.task == task and r.source == source
                              and r.success is outcome), None)
                if match is not None:
                    chosen.append(match)
        if chosen:
            picked[task] = chosen
    unmatched = [r for r in rollouts if r.task not in tasks]
    if unmatched:
        picked[''] = unmatched
    return picked



# -- comparisons and the latency benchmark ----------------------------------------------------
COMPARE_GLOB = 'compare*.json'  # `vla compare --json RUN_DIR/eval/compare.json`
LATENCY_BENCH_FILES = ('eval/async_latency.json', 'bench_async/results.json')  # under RUN_DIR


def _read_json(path: Path, expected: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f'{path} does not exist; expected {expected}') from None
    except json.JSONDecodeError as exc:
        raise ReportError(f'{path} is not valid JSON ({exc}); expected {expected}') from exc


def load_comparison(path: Path) -> dict:
    """The JSON of ``vla compare --json``: ``{a, effect, alpha, comparisons: [{b, tasks: {task:
    row}}]}``, each row with n/successes of A and B, difference and its interval, p, verdict."""
    expected = 'the JSON written by `vla compare A.json B.json --json FILE`'
    data = _read_json(path, expected)
    if not isinstance(data, dict) or not isinstance(data.get('comparisons'), list):
        raise ReportError(f'{path}: expected an object with a "comparisons" list ({expected})')
    for i, comparison in enumerate(data['comparisons']):
        tasks = comparison.get('tasks') if isinstance(comparison, dict) else None
        if not isinstance(tasks, dict) or not tasks:
            raise ReportError(f'{path}: comparisons[{i}] needs a non-empty "tasks" object')
        for name, row in tasks.items():
            missing = [k for k in ('n_a', 'successes_a', 'n_b', 'successes_b', 'difference',
                                   'difference_ci95', 'p_value', 'verdict')
                       if not isinstance(row, dict) or k not in row]
            if missing:
                raise ReportError(f'{path}: comparisons[{i}].tasks.{name} lacks {", ".join(missing)}')
    return data


def load_latency_bench(path: Path) -> dict:
    """The results JSON of ``benchmarks/bench_async_latency.py``: ``{checkpoint, tasks,
    episodes_per_task, results: {mode: {latency_ms: {n, successes, ci95, hold_share, max_jerk,
    mean_jerk}}}}``, checked (``mean_jerk`` None where an older bench did not record it)."""
    expected = 'the results JSON of benchmarks/bench_async_latency.py'
    data = _read_json(path, expected)
    results = data.get('results') if isinstance(data, dict) else None
    if not isinstance(results, dict) or not results:
        raise ReportError(f'{path}: expected an object with a non-empty "results" mapping '
                          f'{{mode: {{latency_ms: row}}}} ({expected})')
    checked: dict[str, dict[float, dict]] = {}
    for mode, rows in results.items():
        if not isinstance(rows, dict) or not rows:
            raise ReportError(f'{path}: results.{mode} must map latencies (ms) to rows')
        checked[mode] = {}
        for latency, row in rows.items():
            where = f'results.{mode}.{latency}'
            ms = optional_float(latency)
            if ms is None or ms < 0:
                raise ReportError(f'{path}: {where}: the key must be a latency in ms')
            entry = _rate_entry(row, where, str(path))
            for key in ('hold_share', 'max_jerk', 'mean_jerk'):
                entry[key] = optional_float(row.get(key))
            entry.pop('episodes', None)
            checked[mode][ms] = entry
        checked[mode] = dict(sorted(checked[mode].items()))
    return {**{k: v for k, v in data.items() if k != 'results'}, 'results': checked,
            'source': path}


# -- the run directory ------------------------------------------------------------------------
@dataclass
class RunInputs:
    """What the report shows of a run directory, checked, and what it lacks (``notes``)."""

    run_dir: Path
    results: dict[str, dict]  # source ('policy', 'baseline') -> its results JSON, checked
    tasks: list[str]  # every task of the results, in order of first appearance
    metrics: Metrics | None  # the training log, None when there is none
    stages: dict[str, dict] | None  # stages.json of `vla demo`, None when there is none
    rollouts: dict[str, list[Rollout]]  # task ('' = not matched to one) -> rollouts to show
    notes: list[str] = field(default_factory=list)  # missing inputs and oddities, as sentences
    comparisons: list[tuple[Path, dict]] = field(default_factory=list)  # eval/compare*.json
    latency_bench: dict | None = None  # bench_async_latency.py's results, checked


def load_run(run_dir: str | Path, latency_bench: str | Path | None = None) -> RunInputs:
    """Read and check every input of ``run_dir``; a note for each that is missing.

    ``latency_bench``: the results JSON of ``bench_async_latency.py`` (default: the first of
    ``LATENCY_BENCH_FILES`` under ``run_dir`` that exists).  Raises ``ReportError`` when the
    directory has no results JSON or an input is malformed.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise ReportError(f'run directory {run_dir} does not exist; pass the --out directory of '
                          '`vla demo` (it holds data/, checkpoint/, eval/)')
    notes: list[str] = []
    results: dict[str, dict] = {}
    for source in SOURCES:
        path = run_dir / 'eval' / f'{source}.json'
        if path.is_file():
            results[source] = load_results(path)
        else:
            notes.append(f'No {LABELS[source]} results: eval/{source}.json does not exist.')
    if not results:
        raise ReportError(f'no evaluation results in {run_dir / "eval"}: expected policy.json '
                          'and/or baseline.json (written by `vla evaluate --json FILE` or '
                          '`vla demo`)')
    tasks = list(dict.fromkeys(t for data in results.values() for t in data['tasks']))

    metrics = next((m for m in (load_metrics(run_dir / d) for d in METRICS_DIRS) if m), None)
    if metrics is None:  # `vla train --seeds K` (`vla demo --seeds K`): a log per model, seed_<S>/
        runs = sorted((p for p in (run_dir / 'checkpoint').glob('seed_*') if p.is_dir()),
                      key=lambda p: (len(p.name), p.name))
        metrics = next((m for m in map(load_metrics, runs) if m), None)
        if metrics is not None:
            notes.append(f'Training log of one of {len(runs)} models trained with --seeds: '
                         f'{metrics.source.relative_to(run_dir)} (the others: checkpoint/seed_*/).')
    if metrics is None:
        notes.append('No training metrics: no metrics.jsonl or metrics.csv in checkpoint/ '
                     'or in the run directory.')
    else:
        if metrics.skipped:
            notes.append(f'{metrics.skipped} row(s) of {metrics.source.relative_to(run_dir)} had '
                         'no step or no loss value and were skipped.')
        if not metrics.train and not metrics.val:
            notes.append(f'{metrics.source.relative_to(run_dir)} has no usable loss rows.')
    stages_path = run_dir / 'stages.json'
    stages = load_stages(stages_path) if stages_path.is_file() else None
    if stages is None:
        notes.append('No stage wall times: stages.json does not exist.')
    if not any(data['latency_ms']['samples'] for data in results.values()):
        notes.append('No latency histogram: no results file has latency_ms.samples.')

    rollouts = find_rollouts(run_dir, results, tasks, notes)
    picked = pick_rollouts(rollouts, tasks)
    if not rollouts:
        notes.append('No rollout videos: no episode names a video and eval/videos/ has no '
                     '.gif or .mp4.')
    else:
        for task in tasks:
            outcomes = {r.success for r in picked.get(task, [])}
            lacking = [w for w, flag in (('success', True), ('failure', False))
                       if flag not in outcomes]
            if lacking:
                notes.append(f'No {" or ".join(lacking)} rollout video for {task}.')
    comparisons = [(path, load_comparison(path))
                   for path in sorted((run_dir / 'eval').glob(COMPARE_GLOB)) if path.is_file()]
    if latency_bench is None:
        latency_bench = next((run_dir / f for f in LATENCY_BENCH_FILES if (run_dir / f).is_file()),
                             None)
        if latency_bench is None:
            notes.append('No latency benchmark: no eval/async_latency.json or '
                         'bench_async/results.json (benchmarks/bench_async_latency.py).')
    bench = load_latency_bench(Path(latency_bench)) if latency_bench is not None else None
    return RunInputs(run_dir, results, tasks, metrics, stages, picked, notes, comparisons, bench)
