"""The figures of the evaluation report (``vla report``), drawn with matplotlib as PNG bytes.

Each function takes checked inputs (``report_inputs``) and returns the PNG, or None when there
is nothing to draw. Figures are drawn on a plain ``Figure`` with the Agg canvas: no pyplot
state, no display needed.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from vla_bringup.report_inputs import LABELS, Metrics, optional_float

COLORS = {'policy': '#1f77b4', 'baseline': '#ff7f0e'}


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


def latency_bins(sample_lists: Sequence[Sequence[float]], count: int = 60) -> np.ndarray:
    """``count`` equal bins from 0 to the highest p99.9 (at least 1 µs); the last edge is that
    value exactly, so samples clipped to it (everything above) land in the last bin."""
    top = max(max(float(np.percentile(samples, 99.9)) for samples in sample_lists), 1e-3)
    return np.linspace(0.0, top, count + 1)


def latency_figure(results: dict[str, dict]) -> bytes | None:
    """Histogram of per-tick latencies with the p50/p99 lines (sources that logged samples)."""
    with_samples = {s: d['latency_ms'] for s, d in results.items() if d['latency_ms']['samples']}
    if not with_samples:
        return None
    fig = _new_figure(8, 3.4)
    ax = fig.subplots()
    bins = latency_bins([lat['samples'] for lat in with_samples.values()])
    top = bins[-1]
    for source, lat in with_samples.items():
        samples = lat['samples']
        ax.hist([min(s, top) for s in samples], bins=bins, color=COLORS[source], alpha=0.55,
                label=f'{LABELS[source]} ({len(samples)} ticks)')
        for q, style in ((50, '--'), (99, ':')):
            key = f'p{q}'
            value = optional_float(lat.get(key)) or float(np.percentile(samples, q))
            ax.axvline(value, color=COLORS[source], ls=style, lw=1.6,
                       label=f'{LABELS[source]} {key} {value:.1f} ms')
    ax.set_xlabel('latency per control tick (ms; the last bin holds everything above)')
    ax.set_ylabel('ticks')
    ax.set_title('control latency')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)



def async_latency_figure(bench: dict) -> bytes:
    """Success (95% Wilson bars) and mean jerk against injected inference latency, one line per
    stitching policy (``bench_async_latency.py``'s results, checked by ``load_latency_bench``)."""
    fig = _new_figure(10, 3.8)
    ax_success, ax_jerk = fig.subplots(1, 2)
    jerk_key = ('mean_jerk' if all(r['mean_jerk'] is not None for rows in bench['results'].values()
                                   for r in rows.values()) else 'max_jerk')
    modes = list(bench['results'])
    latencies = [ms for rows in bench['results'].values() for ms in rows]
    dodge = (max(latencies) - min(latencies) or 1.0) * 0.012  # keep overlapping bars apart
    for i, (mode, rows) in enumerate(bench['results'].items()):
        xs = [ms + (i - (len(modes) - 1) / 2) * dodge for ms in rows]
        rates = [r['success_rate'] for r in rows.values()]
        low = [max(0.0, r['success_rate'] - r['ci95'][0]) for r in rows.values()]
        high = [max(0.0, r['ci95'][1] - r['success_rate']) for r in rows.values()]
        ax_success.errorbar(xs, rates, yerr=[low, high], marker='o', capsize=3, label=mode)
        jerks = [r[jerk_key] for r in rows.values()]
        ax_jerk.plot([x for x, j in zip(xs, jerks) if j is not None],
                     [j for j in jerks if j is not None], marker='o', label=mode)
    ax_success.set(xlabel='injected inference latency (ms)', ylabel='success rate',
                   title='success (error bars: 95% Wilson interval)', ylim=(0, 1.05))
    what = 'mean' if jerk_key == 'mean_jerk' else 'max (mean not recorded)'
    ax_jerk.set(xlabel='injected inference latency (ms)',
                ylabel=f'{what.split()[0]} jerk (rad/s per tick)', title=f'{what} jerk')
    ax_jerk.set_ylim(bottom=0)
    for ax in (ax_success, ax_jerk):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)
