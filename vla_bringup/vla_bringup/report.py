"""The evaluation report of a run directory: ``vla report RUN_DIR`` (ROS-free).

Reads what ``vla demo`` leaves in ``RUN_DIR/{data,checkpoint,eval}`` and writes

    RUN_DIR/report/index.html    one self-contained page (figures and small rollouts inlined)
    RUN_DIR/report/report.md     the same tables, linking RUN_DIR/report/figures/*.png

Inputs (every one optional except at least one results JSON; what is missing is stated in
the report):

- ``eval/policy.json``, ``eval/baseline.json``: results JSON of ``vla evaluate`` (DESIGN.md);
  ``latency_ms.samples`` (per-tick latencies) feed the histogram, ``episodes[i].video``
  (a path relative to RUN_DIR) the rollouts;
- ``metrics.jsonl`` or ``metrics.csv`` (the ``vla train`` log, both written side by side) in
  ``checkpoint/`` (``vla demo`` trains with ``--out RUN_DIR/checkpoint``) or RUN_DIR itself;
- ``stages.json``: ``{stage: {seconds, status}}`` of ``vla demo``;
- ``eval/videos/**/*.gif|*.mp4``: rollouts not named by an episode, matched to a task, to
  success/failure and to policy/baseline by their path below ``eval/videos``.

Rollout media: GIFs and MP4s up to ``max_embed_mb`` are embedded as data URIs (``<img>`` /
``<video>``), so index.html can be mailed on its own; larger ones are linked by a path
relative to the report, which works while the run directory stays together.
"""
from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vla_common.files import atomic_write_bytes, atomic_write_text

SOURCES = ('policy', 'baseline')  # eval/<source>.json
LABELS = {'policy': 'VLA policy', 'baseline': 'scripted baseline'}
COLORS = {'policy': '#1f77b4', 'baseline': '#ff7f0e'}
METRICS_FILES = ('metrics.jsonl', 'metrics.csv')  # the trainer writes both; jsonl keeps every key
METRICS_DIRS = ('checkpoint', '.')  # where under RUN_DIR the training log is looked for
MEDIA_TYPES = {'.gif': 'image/gif', '.mp4': 'video/mp4'}
DEFAULT_MAX_EMBED_MB = 5.0  # larger rollout media are linked instead of inlined


class ReportError(ValueError):
    """An input the report cannot use; the message names the file and what was expected."""


# -- inputs -----------------------------------------------------------------------------------
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
        if data['overall'].get(key) is None and total and all(t.get(key) is not None for t in tasks):
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


@dataclass
class Metrics:
    """The training log: one row per logged step."""

    source: Path
    steps: list[int] = field(default_factory=list)
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    lr: list[tuple[int, float]] = field(default_factory=list)
    elapsed_s: float | None = None
    skipped: int = 0  # rows without a step or any loss value
    ignored: list[Path] = field(default_factory=list)  # other metrics files not read


TRAIN_KEYS = ('train_loss', 'loss')
VAL_KEYS = ('val_loss', 'validation_loss', 'eval_loss')


def _optional_float(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or value.lower() in ('nan', 'none', 'null'):
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first(row: dict, keys: Sequence[str]) -> float | None:
    for key in keys:
        value = _optional_float(row.get(key))
        if value is not None:
            return value
    return None


def _metric_rows(path: Path) -> Iterable[dict | None]:
    """The rows of a metrics file as dicts (None for a line that is not a JSON object)."""
    if path.suffix == '.csv':
        with path.open(newline='') as f:
            for row in csv.DictReader(f):
                yield {(k or '').strip(): v for k, v in row.items()}
        return
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            yield None
            continue
        yield row if isinstance(row, dict) else None


def load_metrics(directory: Path) -> Metrics | None:
    """The trainer's log in ``directory``, or None when there is none.

    ``metrics.jsonl`` is read when it has loss rows, else ``metrics.csv``; the train loss is
    ``train_loss`` or ``loss``, the validation loss ``val_loss`` (empty on most rows).
    """
    found = [directory / name for name in METRICS_FILES if (directory / name).is_file()]
    if not found:
        return None
    for i, path in enumerate(found):
        metrics = _read_metrics(path, ignored=found[:i] + found[i + 1:])
        if metrics.train or metrics.val:
            return metrics
    return _read_metrics(found[0], ignored=found[1:])  # none usable: report on the first


def _read_metrics(path: Path, ignored: list[Path]) -> Metrics:
    metrics = Metrics(source=path, ignored=ignored)
    for row in _metric_rows(path):
        step = _optional_float(row.get('step')) if row else None
        train = _first(row, TRAIN_KEYS) if row else None
        val = _first(row, VAL_KEYS) if row else None
        if step is None or (train is None and val is None):
            metrics.skipped += 1
            continue
        step = int(step)
        metrics.steps.append(step)
        if train is not None:
            metrics.train.append((step, train))
        if val is not None:
            metrics.val.append((step, val))
        lr = _optional_float(row.get('lr'))
        if lr is not None:
            metrics.lr.append((step, lr))
        elapsed = _optional_float(row.get('elapsed_s'))
        if elapsed is not None:
            metrics.elapsed_s = max(elapsed, metrics.elapsed_s or 0.0)
    return metrics


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
        stages[str(name)] = {'seconds': _optional_float(entry.get('seconds')),
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


# -- figures ----------------------------------------------------------------------------------
def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    return buf.getvalue()


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Centred mean over ``window`` (odd) values, shrinking at the ends."""
    half = window // 2
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def loss_figure(metrics: Metrics) -> bytes:
    """Train and validation loss over steps (log scale), the learning rate beside it."""
    fig = _new_figure(10, 3.6)
    ax, ax_lr = fig.subplots(1, 2, width_ratios=[2.2, 1])
    if metrics.train:
        steps, values = zip(*metrics.train)
        noisy = len(values) > 50
        ax.plot(steps, values, color=COLORS['policy'], alpha=0.35 if noisy else 1, lw=1,
                label='train loss')
        if noisy:  # a centred moving average: no lag behind the logged values
            window = len(values) // 40 * 2 + 1
            ax.plot(steps, moving_average(values, window), color=COLORS['policy'], lw=2,
                    label=f'train loss (mean of {window} rows)')
    if metrics.val:
        steps, values = zip(*metrics.val)
        ax.plot(steps, values, 'o-', color='#d62728', lw=2, ms=4, label='validation loss')
    losses = [v for _, v in metrics.train + metrics.val]
    if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
        ax.set_yscale('log')
    ax.set_xlabel('step')
    ax.set_ylabel('loss')
    ax.set_title('training loss')
    ax.grid(alpha=0.3)
    ax.legend()
    if metrics.lr:
        steps, values = zip(*metrics.lr)
        ax_lr.plot(steps, values, color='#2ca02c')
        ax_lr.ticklabel_format(axis='y', style='sci', scilimits=(-2, 2))
    else:
        ax_lr.text(0.5, 0.5, 'no learning rate logged', ha='center', va='center',
                   transform=ax_lr.transAxes, color='gray')
    ax_lr.set_xlabel('step')
    ax_lr.set_title('learning rate')
    ax_lr.grid(alpha=0.3)
    return _png(fig)


def success_figure(results: dict[str, dict], tasks: Sequence[str]) -> bytes:
    """Per-task (and overall) success rate, policy and baseline side by side, 95% CI bars."""
    names = [*tasks, 'overall']
    fig = _new_figure(max(6.0, 1.6 * len(names) + 2), 4.0)
    ax = fig.subplots()
    width = 0.8 / len(results)
    for i, (source, data) in enumerate(results.items()):
        xs, rates, low, high, labels = [], [], [], [], []
        for j, name in enumerate(names):
            entry = data['overall'] if name == 'overall' else data['tasks'].get(name)
            if entry is None:
                continue
            xs.append(j + (i - (len(results) - 1) / 2) * width)
            rate = entry['success_rate']
            rates.append(rate)
            low.append(max(0.0, rate - entry['ci95'][0]))
            high.append(max(0.0, entry['ci95'][1] - rate))
            labels.append(f'{entry["successes"]}/{entry["n"]}')
        ax.bar(xs, rates, width * 0.95, yerr=[low, high], capsize=4,
               color=COLORS[source], label=LABELS[source], error_kw={'lw': 1.2})
        for x, rate, label in zip(xs, rates, labels):  # k/n inside a tall bar, above a short one
            inside = rate >= 0.15
            ax.text(x, rate / 2 if inside else rate + 0.02, label, ha='center',
                    va='center' if inside else 'bottom', fontsize=8,
                    color='white' if inside else '#222',
                    bbox=None if inside else {'fc': 'white', 'ec': 'none', 'pad': 1})
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('success rate')
    ax.set_title('success rate per task (error bars: 95% Wilson interval)')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_figure(results: dict[str, dict]) -> bytes | None:
    """Histogram of per-tick latencies with the p50/p99 lines (sources that logged samples)."""
    with_samples = {s: d['latency_ms'] for s, d in results.items() if d['latency_ms']['samples']}
    if not with_samples:
        return None
    fig = _new_figure(8, 3.4)
    ax = fig.subplots()
    top = max(max(_percentile(lat['samples'], 0.999) for lat in with_samples.values()), 1e-3)
    bins = [top * i / 60 for i in range(61)]
    for source, lat in with_samples.items():
        samples = lat['samples']
        ax.hist([min(s, top) for s in samples], bins=bins, color=COLORS[source], alpha=0.55,
                label=f'{LABELS[source]} ({len(samples)} ticks)')
        for q, style in ((0.5, '--'), (0.99, ':')):
            key = f'p{round(q * 100)}'
            value = _optional_float(lat.get(key)) or _percentile(samples, q)
            ax.axvline(value, color=COLORS[source], ls=style, lw=1.6,
                       label=f'{LABELS[source]} {key} {value:.1f} ms')
    ax.set_xlabel('latency per control tick (ms; the last bin holds everything above)')
    ax.set_ylabel('ticks')
    ax.set_title('control latency')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


# -- text -------------------------------------------------------------------------------------
def _rate(entry: dict | None) -> str:
    if entry is None:
        return '—'
    return f'{entry["successes"]}/{entry["n"]} ({entry["success_rate"]:.0%})'


def _ci(entry: dict | None) -> str:
    return '—' if entry is None else f'[{entry["ci95"][0]:.2f}, {entry["ci95"][1]:.2f}]'


def _pair(entries: Sequence[dict | None], key: str, fmt: str) -> str:
    return ' / '.join('—' if e is None or e.get(key) is None else format(e[key], fmt)
                      for e in entries)


def task_table(results: dict[str, dict], tasks: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-task comparison (overall last)."""
    sources = list(results)
    header = ['task']
    for s in sources:
        header += [f'{LABELS[s]} success', f'{LABELS[s]} 95% CI']
    both = ' / '.join(LABELS[s] for s in sources)
    header += [f'mean reward ({both})', f'mean length ({both})', f'e-stops ({both})']
    rows = []
    for name in [*tasks, 'overall']:
        entries = [results[s]['overall'] if name == 'overall' else results[s]['tasks'].get(name)
                   for s in sources]
        row = [name]
        for e in entries:
            row += [_rate(e), _ci(e)]
        row += [_pair(entries, 'mean_reward', '.2f'), _pair(entries, 'mean_length', '.1f'),
                _pair(entries, 'estops', '.0f')]
        rows.append(row)
    return header, rows


def summary_line(results: dict[str, dict]) -> str:
    """Policy success as a fraction of the baseline's (or what there is to say without one)."""
    parts = {s: results[s]['overall'] for s in results}
    text = {s: f'{o["successes"]}/{o["n"]} episodes ({o["success_rate"]:.1%}, 95% CI '
               f'[{o["ci95"][0]:.2f}, {o["ci95"][1]:.2f}])' for s, o in parts.items()}
    if 'policy' in parts and 'baseline' in parts:
        policy, baseline = parts['policy']['success_rate'], parts['baseline']['success_rate']
        if baseline > 0:
            ratio = f'{policy / baseline:.1%} of the scripted baseline\'s success rate'
        else:
            ratio = 'the scripted baseline had no success, so there is no ratio'
        return (f'The VLA policy succeeded in {text["policy"]}: {ratio} '
                f'(baseline: {text["baseline"]}).')
    source = next(iter(parts))
    missing = 'baseline' if source == 'policy' else 'policy'
    return (f'The {LABELS[source]} succeeded in {text[source]}; there are no {LABELS[missing]} '
            f'results (eval/{missing}.json) to compare with.')


def _fmt_latency(lat: dict) -> str:
    p50, p99 = _optional_float(lat.get('p50')), _optional_float(lat.get('p99'))
    if p50 is None and p99 is None and not lat['samples']:
        return 'not measured'
    if p50 is None and lat['samples']:
        p50 = _percentile(lat['samples'], 0.5)
    if p99 is None and lat['samples']:
        p99 = _percentile(lat['samples'], 0.99)
    return ', '.join(f'{k} {v:.1f} ms' for k, v in (('p50', p50), ('p99', p99)) if v is not None)


def run_facts(results: dict[str, dict]) -> list[tuple[str, str]]:
    """(label, value) lines about each evaluation: what ran, how many episodes, rates, which
    simulator timing (lock-step or real time), controller overruns, and the CPU."""
    from vla_bringup.evaluation import controller_text, machine_text, simulation_text
    facts = []
    machines = []
    for source, data in results.items():
        rate = _optional_float(data.get('control_rate_hz'))
        timeouts = sum(int(t.get('timeouts') or 0) for t in data['tasks'].values())
        controller = data.get('controller') if isinstance(data.get('controller'), dict) else None
        facts.append((LABELS[source],
                      f'{data.get("policy", "?")}; {data.get("episodes_per_task", "?")} episodes '
                      f'per task from seed {data.get("seed", "?")}; latency '
                      f'{_fmt_latency(data["latency_ms"])}; control rate '
                      f'{"not measured" if rate is None else f"{rate:.1f} Hz"}; '
                      + (f'controller {controller_text(controller)}; ' if controller else '')
                      + f'{timeouts} timed-out episode(s); simulation '
                      + (simulation_text(data['simulation']) if isinstance(data.get('simulation'), dict)
                         else 'timing not recorded')))
        if isinstance(data.get('machine'), dict):
            machines.append(machine_text(data['machine']))
    if machines:
        facts.append(('Machine', '; '.join(dict.fromkeys(machines))))
    return facts


def stage_table(stages: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the stage wall times (the command column only where one is known)."""
    commands = any(s['command'] for s in stages.values())
    header = ['stage', 'seconds', 'status'] + (['command'] if commands else [])
    rows = [[name, '—' if s['seconds'] is None else f'{s["seconds"]:.1f}', s['status']]
            + ([s['command']] if commands else []) for name, s in stages.items()]
    total = sum(s['seconds'] or 0.0 for s in stages.values())
    rows.append(['total', f'{total:.1f}', ''] + ([''] if commands else []))
    return header, rows


# -- writers ----------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[c.replace('|', '\\|') for c in r] for r in [header, *rows]]
    lines = ['| ' + ' | '.join(esc[0]) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(r) + ' |' for r in esc[1:]]
    return '\n'.join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = '') -> str:
    head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in r) + '</tr>'
                   for r in rows)
    cls = f' class="{css}"' if css else ''
    return f'<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _data_uri(mime: str, data: bytes) -> str:
    return f'data:{mime};base64,{base64.b64encode(data).decode("ascii")}'


def _rollout_caption(r: Rollout) -> str:
    who = LABELS.get(r.source, 'rollout')
    outcome = {True: 'success', False: 'failure', None: 'outcome not recorded'}[r.success]
    seed = '' if r.seed is None else f', seed {r.seed}'
    return f'{r.task or "unmatched"}: {who} {outcome}{seed}'


BROWSER_CODECS = ('avc1', 'h264', 'x264', 'vp09', 'av01', 'hev1', 'hvc1')  # what <video> plays


def video_preview(path: Path) -> tuple[bytes | None, str | None]:
    """(PNG of the middle frame, fourcc) of a video, via OpenCV; (None, None) if unreadable.

    The frame is the ``<video>`` poster, so the page shows the rollout even where the browser
    cannot decode the codec (OpenCV's own ``mp4v`` writer, for one).
    """
    try:
        import cv2
    except ImportError:
        return None, None
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None, None
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        fourcc = ''.join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip().lower() or None
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if frames > 1:
            cap.set(cv2.CAP_PROP_POS_FRAMES, frames // 2)
        ok, frame = cap.read()
        if not ok:
            return None, fourcc
        ok, png = cv2.imencode('.png', frame)
        return (png.tobytes() if ok else None), fourcc
    finally:
        cap.release()


def _rollout_html(r: Rollout, report_dir: Path, max_bytes: int) -> str:
    mime = MEDIA_TYPES.get(r.path.suffix.lower())
    size = r.path.stat().st_size
    caption = html.escape(_rollout_caption(r))
    if mime is None:
        return f'<figure><figcaption>{caption}: unsupported file {html.escape(r.path.name)}' \
               '</figcaption></figure>'
    if size <= max_bytes:
        src, note = _data_uri(mime, r.path.read_bytes()), ''
    else:
        src = html.escape(os.path.relpath(r.path, report_dir))
        note = f' (linked, {size / 1e6:.1f} MB)'
    if mime == 'image/gif':
        media = f'<img src="{src}" alt="{caption}">'
    else:
        poster, fourcc = video_preview(r.path)
        poster_attr = '' if poster is None else f' poster="{_data_uri("image/png", poster)}"'
        media = f'<video src="{src}"{poster_attr} controls muted loop playsinline></video>'
        if fourcc and fourcc not in BROWSER_CODECS:
            note += f' (codec {fourcc}: browsers may not play it, the file does in a video player)'
        href = html.escape(os.path.relpath(r.path, report_dir))
        note_html = f'{html.escape(note)} <a href="{href}">{html.escape(r.path.name)}</a>'
        return f'<figure>{media}<figcaption>{caption}{note_html}</figcaption></figure>'
    return f'<figure>{media}<figcaption>{caption}{html.escape(note)}</figcaption></figure>'


CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1200px;
       margin: 1.5em auto; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
.summary { font-size: 1.1em; background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 0.6em 1em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
table.results td { white-space: nowrap; }
table.stages td:nth-child(n+3), table.stages th:nth-child(n+3) { text-align: left; }
table.stages td:nth-child(4) { font-family: monospace; font-size: 0.9em; }
tbody tr:last-child td { font-weight: 600; }
img.plot { max-width: 100%; height: auto; }
.notes li { color: #8a5a00; }
.rollouts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figure img, figure video { width: 224px; height: auto; image-rendering: pixelated;
                           border: 1px solid #ccc; }
figcaption { font-size: 0.85em; color: #444; max-width: 224px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; } dt { font-weight: 600; }
"""


def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 max_embed_mb: float = DEFAULT_MAX_EMBED_MB) -> tuple[Path, Path]:
    """Write ``index.html`` and ``report.md`` (and ``figures/*.png``) for ``run_dir``.

    ``out_dir`` defaults to ``run_dir/report``. Returns ``(html_path, md_path)``. Raises
    ``ReportError`` when the run directory has no results JSON or an input is malformed.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise ReportError(f'run directory {run_dir} does not exist; pass the --out directory of '
                          '`vla demo` (it holds data/, checkpoint/, eval/)')
    out = Path(out_dir).resolve() if out_dir is not None else run_dir / 'report'
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

    figures: dict[str, tuple[str, bytes]] = {}  # name -> (title, png)
    if metrics is not None and (metrics.train or metrics.val):
        figures['loss'] = ('Training loss', loss_figure(metrics))
    figures['success'] = ('Success rate per task', success_figure(results, tasks))
    latency_png = latency_figure(results)
    if latency_png is not None:
        figures['latency'] = ('Control latency', latency_png)
    else:
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

    for name, (_, png) in figures.items():
        atomic_write_bytes(out / 'figures' / f'{name}.png', png)

    header, rows = task_table(results, tasks)
    facts = run_facts(results)
    created = datetime.now(timezone.utc).isoformat(timespec='seconds')
    summary = summary_line(results)
    metrics_line = None
    if metrics is not None:
        rel = metrics.source.relative_to(run_dir)
        last_train = f'{metrics.train[-1][1]:.4g}' if metrics.train else '—'
        last_val = f'{metrics.val[-1][1]:.4g}' if metrics.val else '—'
        elapsed = '' if metrics.elapsed_s is None else f', {metrics.elapsed_s:.0f} s of training'
        metrics_line = (f'from {rel}: {len(metrics.steps)} logged rows up to step '
                        f'{max(metrics.steps) if metrics.steps else 0}{elapsed}; last train loss '
                        f'{last_train}, last validation loss {last_val}')
        if metrics.ignored:
            metrics_line += (f' ({", ".join(p.name for p in metrics.ignored)} beside it, '
                             'the same log in another format, not read)')

    # report.md
    md = [f'# Evaluation report: {run_dir.name}', '',
          f'Run directory `{run_dir}`, report written {created}.', '', f'**{summary}**', '',
          '## Results per task', '', _md_table(header, rows), '']
    md += [f'- **{label}**: {text}' for label, text in facts] + ['']
    md += ['![success rate per task](figures/success.png)', '']
    md += ['## Training', '']
    if metrics_line:
        md += [f'Training log {metrics_line}.', '']
    md += ['![training loss](figures/loss.png)', ''] if 'loss' in figures else \
          ['No loss curves (see notes).', '']
    md += ['## Control latency', '']
    md += ['![control latency](figures/latency.png)', ''] if 'latency' in figures else \
          ['No per-tick latency samples (see notes).', '']
    if stages is not None:
        md += ['## Stage wall times', '', _md_table(*stage_table(stages)), '']
    md += ['## Rollouts', '']
    for task, chosen in picked.items():
        md += [f'### {task or "not matched to a task"}', '']
        for r in chosen:
            rel = Path(os.path.relpath(r.path, out)).as_posix()
            md += [f'- {_rollout_caption(r)}: [{r.path.name}]({rel})' +
                   ('' if r.path.suffix.lower() != '.gif' else f'<br>![{r.path.name}]({rel})')]
        md.append('')
    if not picked:
        md += ['No rollout videos (see notes).', '']
    if notes:
        md += ['## Missing inputs and notes', ''] + [f'- {n}' for n in notes] + ['']

    # index.html
    esc = html.escape
    body = [f'<h1>Evaluation report: {esc(run_dir.name)}</h1>',
            f'<p class="meta">Run directory <code>{esc(str(run_dir))}</code>, '
            f'written {esc(created)}</p>',
            f'<p class="summary">{esc(summary)}</p>',
            '<h2>Results per task</h2>', _html_table(header, rows, 'results'),
            '<dl>' + ''.join(f'<dt>{esc(label)}</dt><dd>{esc(text)}</dd>'
                             for label, text in facts) + '</dl>']

    def img(name: str) -> str:
        title, png = figures[name]
        return f'<img class="plot" alt="{esc(title)}" src="{_data_uri("image/png", png)}">'
    body.append(img('success'))
    body.append('<h2>Training</h2>')
    if metrics_line:
        body.append(f'<p>Training log {esc(metrics_line)}.</p>')
    body.append(img('loss') if 'loss' in figures else '<p>No loss curves (see notes).</p>')
    body.append('<h2>Control latency</h2>')
    body.append(img('latency') if 'latency' in figures else
                '<p>No per-tick latency samples (see notes).</p>')
    if stages is not None:
        body += ['<h2>Stage wall times</h2>',
                 _html_table(*stage_table(stages), 'stages')]
    body.append('<h2>Rollouts</h2>')
    max_bytes = int(max_embed_mb * 1e6)
    for task, chosen in picked.items():
        body.append(f'<h3>{esc(task or "not matched to a task")}</h3><div class="rollouts">' +
                    ''.join(_rollout_html(r, out, max_bytes) for r in chosen) + '</div>')
    if not picked:
        body.append('<p>No rollout videos (see notes).</p>')
    if notes:
        body += ['<h2>Missing inputs and notes</h2><ul class="notes">',
                 *(f'<li>{esc(n)}</li>' for n in notes), '</ul>']
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>VLA evaluation report: {esc(run_dir.name)}</title><style>{CSS}</style>'
            '</head><body>\n' + '\n'.join(body) + '\n</body></html>\n')

    html_path, md_path = out / 'index.html', out / 'report.md'
    atomic_write_text(md_path, '\n'.join(md).rstrip() + '\n')
    atomic_write_text(html_path, page)
    return html_path, md_path


# -- vla report -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('run_dir', type=Path,
                        help='run directory of `vla demo` (holds eval/, checkpoint/, stages.json)')
    parser.add_argument('--out', type=Path, default=None,
                        help='where to write index.html, report.md and figures/ '
                             '(default: RUN_DIR/report)')
    parser.add_argument('--max-embed-mb', type=float, default=DEFAULT_MAX_EMBED_MB,
                        help='rollout GIF/MP4 files up to this size are embedded in index.html, '
                             'larger ones linked (default: %(default)s)')


def run(args: argparse.Namespace, _rest: list[str]) -> int:
    from vla_bringup.commands import CommandError
    if args.max_embed_mb < 0:
        raise CommandError(f'--max-embed-mb must be >= 0, got {args.max_embed_mb}')
    try:
        html_path, md_path = write_report(args.run_dir, args.out, args.max_embed_mb)
    except ReportError as exc:
        raise CommandError(str(exc)) from exc
    print(f'report written to {html_path} and {md_path}', file=sys.stderr)
    return 0
