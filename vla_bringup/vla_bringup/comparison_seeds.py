"""Training-seed variance: K models of one ``vla train --seeds K`` run, evaluated on the same
evaluation seeds, summarised and compared (ROS-free).

A single training run hides the variance between training seeds, which is often larger than the
difference being claimed.  The per-episode Wilson intervals of one model say how well *that model*
was measured; they say nothing about how a second training run of the same recipe would do.  So:

- :func:`seed_spread`: the success rate of each training seed, their mean, min/max, standard
  deviation, and a Student-t 95% interval *for the mean across training seeds* (the training run
  is the unit of replication; each per-seed rate already carries its episodes' binomial noise, so
  the interval covers both sources of variance), with the between-seed standard deviation left
  after subtracting the binomial part;
- :func:`combine_training_seeds`: the results JSON of each model into one results JSON: the
  pooled episodes (the usual ``tasks``/``overall`` entries with Wilson intervals, each episode
  tagged with its ``training_seed``) and a ``training_seeds`` entry with the spread per task and
  overall;
- :func:`compare_seed_results`: ``vla compare`` of two results where at least one has several
  training seeds.

**The comparison method, and why.**  The difference of the two recipes' mean success is tested
with Welch's t-test on the per-seed success rates (one rate per trained model), with the
Welch-Satterthwaite degrees of freedom, and its 95% interval is the matching t interval.  The
variance of a per-seed rate is the between-seed variance plus the binomial variance of its
episodes, so this test uses both sources of variance without having to split them (a
two-level model estimated on cluster means).  A side with one model of its own and no
``training_seeds`` entry (the scripted baseline, or a single checkpoint) contributes only its
binomial variance, ``p(1-p)/n``: that is right for the scripted baseline; for a single trained
model it understates the variance, which the verdict text says.  Each group's variance is
floored at the binomial variance of its rate (Agresti-Caffo ``(s+2)/(n+4)``), because with three
seeds a sample variance of 0 happens by chance (3 x 10/10) and would make any difference
"significant".  The pairing of evaluation seeds is not used (the test is conservative where both
were evaluated on the same seeds).

Not chosen: a hierarchical bootstrap (resample training seeds, then episodes within them).
With K = 3 there are only 10 distinct resamples of the seeds, and the bootstrap variance of a
mean of K values is (K-1)/K of the unbiased one, so its intervals are too narrow exactly where
the question matters; the t distribution with K-1 degrees of freedom is the small-sample answer.
The paired McNemar test pooled over every model's episodes is not used either: it treats K x n
episodes as independent draws of one policy, ignoring the training-seed variance altogether.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from vla_bringup.comparison import (UNDERPOWERED, Comparison, compare_episode_results,
                                    outcomes_by_task, verdict)
from vla_bringup.comparison_stats import t_cdf, t_quantile
from vla_common.stats import rate_summary, wilson_interval

WELCH = 'Welch t on per-training-seed rates'
METHOD = ('mean of the per-seed success rates; 95% interval: Student t with K-1 degrees of '
          'freedom over the K training seeds (covers training-seed and episode variance)')


# -- the spread over training seeds ----------------------------------------------------------------
@dataclass(frozen=True)
class SeedSpread:
    """Success of each of K training seeds (each on the same evaluation episodes) and its spread."""

    seeds: tuple[int, ...]
    successes: tuple[int, ...]
    n: tuple[int, ...]  # episodes of each seed

    @property
    def k(self) -> int:
        return len(self.seeds)

    @property
    def rates(self) -> list[float]:
        return [s / n if n else 0.0 for s, n in zip(self.successes, self.n)]

    @property
    def mean(self) -> float:
        return sum(self.rates) / self.k

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof 1) of the per-seed rates; 0 for one seed."""
        if self.k < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((r - m) ** 2 for r in self.rates) / (self.k - 1))

    @property
    def binomial_variance(self) -> float:
        """The variance a per-seed rate has from its episodes alone (mean of p(1-p)/n with the
        Agresti-Caffo rate (s+2)/(n+4), which is never 0)."""
        out = 0.0
        for s, n in zip(self.successes, self.n):
            p = (s + 2) / (n + 4)
            out += p * (1 - p) / max(n, 1)
        return out / self.k

    @property
    def between_seed_std(self) -> float:
        """What of the spread is the training seeds' own: sqrt(max(0, std^2 - p(1-p)/(n-1)))
        with each seed's observed rate (the unbiased binomial variance)."""
        if self.k < 2:
            return 0.0
        within = sum(r * (1 - r) / (n - 1) for r, n in zip(self.rates, self.n) if n > 1) / self.k
        return math.sqrt(max(0.0, self.std ** 2 - within))

    def ci95(self) -> tuple[float, float]:
        """Student-t 95% interval of the mean over training seeds, within [0, 1]; for one seed
        the Wilson interval of its episodes (no training-seed variance is known then)."""
        if self.k < 2:
            return wilson_interval(self.successes[0], self.n[0])
        half = t_quantile(0.975, self.k - 1) * self.std / math.sqrt(self.k)
        return (max(0.0, self.mean - half), min(1.0, self.mean + half))

    def to_json(self) -> dict:
        low, high = self.ci95()
        rates = self.rates
        return {'seeds': list(self.seeds), 'successes': list(self.successes), 'n': list(self.n),
                'rates': [round(r, 4) for r in rates], 'mean': round(self.mean, 4),
                'std': round(self.std, 4), 'min': round(min(rates), 4), 'max': round(max(rates), 4),
                'ci95_mean': [round(low, 4), round(high, 4)],
                'between_seed_std': round(self.between_seed_std, 4), 'method': METHOD}

    @classmethod
    def from_json(cls, entry: Mapping) -> SeedSpread:
        try:
            seeds, successes, n = (tuple(int(v) for v in entry[k]) for k in ('seeds', 'successes', 'n'))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f'a training_seeds entry needs seeds, successes and n lists: {entry!r}') from exc
        if not seeds or not len(seeds) == len(successes) == len(n):
            raise ValueError(f'a training_seeds entry needs equally long, non-empty lists: {entry!r}')
        return cls(seeds, successes, n)


def seed_spread(per_seed: Mapping[int, tuple[int, int]]) -> SeedSpread:
    """The spread of ``{training seed: (successes, n)}``."""
    if not per_seed:
        raise ValueError('no training seeds')
    seeds = sorted(per_seed)
    return SeedSpread(tuple(seeds), tuple(per_seed[s][0] for s in seeds),
                      tuple(per_seed[s][1] for s in seeds))


# -- K results JSON -> one ---------------------------------------------------------------------------
def _sum(values: Sequence) -> int | None:
    return None if any(v is None for v in values) else int(sum(values))


def _weighted(entries: Sequence[Mapping], key: str) -> float | None:
    if any(e.get(key) is None for e in entries):
        return None
    total = sum(e['n'] for e in entries)
    return round(sum(e[key] * e['n'] for e in entries) / total, 4) if total else None


def _merge_simulation(entries: Sequence) -> dict | None:
    """The simulator timing of K runs: lock-step timeouts, ticks and silent ticks summed."""
    if not entries or not all(isinstance(e, Mapping) for e in entries):
        return entries[0] if entries else None
    if any(e.get('mode') != 'lockstep' for e in entries):
        return dict(entries[0])
    silent: dict[str, int] = {}
    for e in entries:
        for topic, count in (e.get('silent') or {}).items():
            silent[topic] = silent.get(topic, 0) + int(count)
    merged = {'mode': 'lockstep', 'timeouts': sum(int(e.get('timeouts') or 0) for e in entries),
              'ticks': sum(int(e.get('ticks') or 0) for e in entries), 'silent': silent}
    if any('timeouts_before_episodes' in e for e in entries):
        merged['timeouts_before_episodes'] = sum(int(e.get('timeouts_before_episodes') or 0)
                                                 for e in entries)
    return merged


def _merge_controller(entries: Sequence) -> dict | None:
    """The controllers of K runs: overruns summed, the per-minute rates their largest."""
    entries = [e for e in entries if isinstance(e, Mapping)]
    if not entries:
        return None
    out: dict = {}
    if all('overruns' in e for e in entries):
        out['overruns'] = sum(int(e['overruns']) for e in entries)
    for key in ('overruns_per_minute', 'overruns_per_minute_max'):
        values = [e[key] for e in entries if e.get(key) is not None]
        if values:
            out[key] = max(values)
    return out


def combine_training_seeds(per_seed: Sequence[tuple[int, Mapping]], policy: str,
                           checkpoints: Mapping[int, str] | None = None) -> dict:
    """One results JSON from the results of K models (``[(training seed, results JSON), ...]``),
    each evaluated on the same tasks and evaluation seeds.

    ``tasks``/``overall`` pool the K x n episodes (Wilson intervals of the pooled episodes: the
    per-episode view); ``training_seeds`` holds, per task and overall, :class:`SeedSpread`'s JSON
    (mean, min/max, std, the t interval of the mean across seeds) and each model's own figures.
    Raises ValueError when the models were not evaluated on the same episodes.
    """
    if not per_seed:
        raise ValueError('no per-seed results to combine')
    seeds = [int(s) for s, _ in per_seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f'training seeds repeat: {seeds}')
    keys = {}
    for seed, results in per_seed:
        outcomes = outcomes_by_task(results)
        keys[seed] = {t: sorted(o) for t, o in outcomes.items()}
    first = keys[seeds[0]]
    for seed in seeds[1:]:
        if keys[seed] != first:
            raise ValueError(f'training seed {seed} was evaluated on other tasks/seeds than seed '
                             f'{seeds[0]}: evaluate every model with the same --tasks, --episodes '
                             'and --seed')
    tasks = list(first)
    out_tasks, spreads = {}, {}
    for task in tasks:
        entries = [results['tasks'][task] for _, results in per_seed]
        entry = rate_summary(sum(e['successes'] for e in entries), sum(e['n'] for e in entries))
        for key in ('mean_reward', 'mean_length'):
            entry[key] = _weighted(entries, key)
        entry['estops'] = _sum([e.get('estops') for e in entries])
        entry['timeouts'] = _sum([e.get('timeouts', 0) for e in entries])
        out_tasks[task] = entry
        spreads[task] = seed_spread({s: (r['tasks'][task]['successes'], r['tasks'][task]['n'])
                                     for s, r in per_seed}).to_json()
    overall = rate_summary(sum(t['successes'] for t in out_tasks.values()),
                           sum(t['n'] for t in out_tasks.values()))
    overall['estops'] = _sum([t['estops'] for t in out_tasks.values()])
    overall['timeouts'] = _sum([t['timeouts'] for t in out_tasks.values()])
    spreads['overall'] = seed_spread({s: (r['overall']['successes'], r['overall']['n'])
                                      for s, r in per_seed}).to_json()
    samples = [v for _, r in per_seed for v in (r.get('latency_ms') or {}).get('samples', [])]
    rates = sorted(r['control_rate_hz'] for _, r in per_seed if r.get('control_rate_hz') is not None)
    base = per_seed[0][1]
    runs = [{'seed': s, 'checkpoint': (checkpoints or {}).get(s, ''), 'policy': r.get('policy'),
             'overall': {k: r['overall'][k] for k in ('n', 'successes', 'success_rate', 'ci95')},
             'latency_ms': {k: v for k, v in (r.get('latency_ms') or {}).items() if k != 'samples'},
             'simulation': r.get('simulation'), 'controller': r.get('controller'),
             'checkpoint_metadata': r.get('checkpoint_metadata')} for s, r in per_seed]
    latency = {}
    if samples:
        from vla_common.evaluation import latency_summary
        latency = latency_summary(samples)
    return {'policy': policy, 'runner': base.get('runner'),
            'episodes_per_task': base.get('episodes_per_task'), 'seed': base.get('seed'),
            'tasks': out_tasks, 'overall': overall, 'latency_ms': latency,
            'control_rate_hz': rates[len(rates) // 2] if rates else None,
            'simulation': _merge_simulation([r.get('simulation') for _, r in per_seed]),
            'controller': _merge_controller([r.get('controller') for _, r in per_seed]),
            'machine': base.get('machine'),
            'training_seeds': {'seeds': seeds, 'method': METHOD, 'tasks': spreads, 'runs': runs},
            'episodes': [{**e, 'training_seed': s} for s, r in per_seed for e in r.get('episodes', [])]}


def training_spreads(results: Mapping) -> dict[str, SeedSpread] | None:
    """``{task or 'overall': SeedSpread}`` of a combined results JSON, None for one model."""
    entry = results.get('training_seeds')
    if not entry:
        return None
    if not isinstance(entry, Mapping) or not isinstance(entry.get('tasks'), Mapping):
        raise ValueError('training_seeds must be an object with a "tasks" mapping '
                         '(written by `vla evaluate --checkpoint OUT` of a --seeds run)')
    return {name: SeedSpread.from_json(e) for name, e in entry['tasks'].items()}


def format_seed_spread(results: Mapping) -> str:
    """The spread over training seeds as text, beside the pooled per-episode intervals."""
    spreads = training_spreads(results)
    if not spreads:
        return ''
    first = next(iter(spreads.values()))
    lines = [f'training seeds {", ".join(map(str, first.seeds))}: success of each model on the same '
             'episodes, mean, spread and 95% t interval of the mean across seeds',
             f'{"task":<22}{"per seed":>24}{"mean":>7}{"std":>7}{"min-max":>12}'
             f'{"95% CI (seeds)":>18}{"pooled Wilson":>16}']
    for name, spread in spreads.items():
        entry = results['overall'] if name == 'overall' else results['tasks'].get(name, {})
        rates = ' '.join(f'{r:.0%}' for r in spread.rates)
        low, high = spread.ci95()
        pooled = (f'[{entry["ci95"][0]:.2f}, {entry["ci95"][1]:.2f}]' if entry.get('ci95') else '')
        lines.append(f'{name:<22}{rates:>24}{spread.mean:>7.0%}{spread.std:>7.2f}'
                     f'{f"{min(spread.rates):.0%}-{max(spread.rates):.0%}":>12}'
                     f'{f"[{low:.2f}, {high:.2f}]":>18}{pooled:>16}')
    return '\n'.join(lines)


# -- comparing two recipes ------------------------------------------------------------------------
def _side(spread: SeedSpread | None, successes: int, n: int) -> tuple[float, float, float, int]:
    """(mean, variance of the mean, degrees of freedom, K) of one side."""
    if spread is None or spread.k < 2:
        p = (successes + 2) / (n + 4)  # one model: only its episodes' binomial variance
        return successes / n, p * (1 - p) / n, max(n - 1, 1), 1
    var = max(spread.std ** 2, spread.binomial_variance)
    return spread.mean, var / spread.k, spread.k - 1, spread.k


def welch_comparison(name: str, spread_a: SeedSpread | None, counts_a: tuple[int, int],
                     spread_b: SeedSpread | None, counts_b: tuple[int, int], effect: float = 0.2,
                     alpha: float = 0.05) -> Comparison:
    """Welch's t-test of mean_b - mean_a over training seeds (see the module docstring)."""
    mean_a, var_a, df_a, k_a = _side(spread_a, *counts_a)
    mean_b, var_b, df_b, k_b = _side(spread_b, *counts_b)
    diff, se = mean_b - mean_a, math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a ** 2 / df_a + var_b ** 2 / df_b)
    t = diff / se
    p = min(1.0, 2 * (1 - t_cdf(abs(t), df)))
    half = t_quantile(1 - alpha / 2, df) * se
    ci = (max(-1.0, diff - half), min(1.0, diff + half))
    result = verdict(p, ci, effect, alpha)
    needed = None
    if result == UNDERPOWERED:  # training seeds per recipe for +/-effect at 80% power (normal)
        var_seed = max(v * k for v, k in ((var_a, k_a), (var_b, k_b)) if k > 1)
        z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(0.8)
        needed = max(2, math.ceil(2 * z * z * var_seed / effect ** 2))
    return Comparison(name, counts_a[1], counts_a[0], counts_b[1], counts_b[0], paired=False,
                      p_value=p, difference=diff, ci95=ci, verdict=result, needed=needed,
                      test=WELCH, seeds_a=spread_a, seeds_b=spread_b, df=df)


def compare_seed_results(a: Mapping, b: Mapping, effect: float = 0.2,
                         alpha: float = 0.05) -> list[Comparison]:
    """Per task both have, then overall: Welch's t-test over training seeds where at least one
    side has several (a side with one model counts with its binomial variance only); two single
    models fall back to the per-episode comparison (paired McNemar on the same seeds)."""
    sa, sb = training_spreads(a), training_spreads(b)
    if not (sa and max(s.k for s in sa.values()) > 1) and not (sb and max(s.k for s in sb.values()) > 1):
        return compare_episode_results(a, b, effect, alpha)
    ta, tb = a.get('tasks') or {}, b.get('tasks') or {}
    common = [t for t in ta if t in tb]
    if not common:
        raise ValueError(f'the evaluations share no task (A: {sorted(ta)}, B: {sorted(tb)})')

    def counts(results: Mapping, name: str) -> tuple[int, int]:
        entry = results['overall'] if name == 'overall' else results['tasks'][name]
        return int(entry['successes']), int(entry['n'])

    rows = []
    for name in [*common, 'overall']:
        if name == 'overall' and len(common) < len(ta) or name == 'overall' and len(common) < len(tb):
            raise ValueError('comparing training seeds overall needs the same tasks on both sides '
                             f'(A: {sorted(ta)}, B: {sorted(tb)})')
        rows.append(welch_comparison(name, (sa or {}).get(name), counts(a, name),
                                     (sb or {}).get(name), counts(b, name), effect, alpha))
    return rows



# -- python -m vla_bringup.comparison_seeds: combine results JSON evaluated elsewhere ---------------
def _training_seed(path: str, results: Mapping, index: int) -> int:
    """The training seed of a results JSON: ``seed_<S>`` in its checkpoint or file name."""
    import re
    for text in (str(results.get('policy', '')), path):
        match = re.search(r'seed_(\d+)', text)
        if match:
            return int(match.group(1))
    return index


def main(argv: list[str] | None = None) -> int:
    """Combine the results JSON of each model of a ``--seeds K`` run (evaluated one by one, e.g.
    with the in-process ``ros2 run vla_policy evaluate``) into one, as ``vla evaluate --checkpoint
    OUT`` writes it."""
    import argparse
    import json
    import sys
    from pathlib import Path

    from vla_common.evaluation import format_table, write_results
    parser = argparse.ArgumentParser(prog='python -m vla_bringup.comparison_seeds',
                                     description=main.__doc__)
    parser.add_argument('results', nargs='+', type=Path, metavar='SEED_RESULTS.json',
                        help="one results JSON per trained model (the training seed is read from "
                             "'seed_<S>' in its checkpoint path or file name)")
    parser.add_argument('--out', type=Path, required=True, help='the combined results JSON')
    args = parser.parse_args(argv)
    try:
        loaded = [(str(p), json.loads(p.read_text())) for p in args.results]
        per_seed = [(_training_seed(p, r, i), r) for i, (p, r) in enumerate(loaded)]
        combined = combine_training_seeds(
            per_seed, policy=f'{len(per_seed)} training seeds: ' + ', '.join(p for p, _ in loaded),
            checkpoints={s: str(r.get('policy', '')) for s, r in per_seed})
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        print(f'comparison_seeds: error: {exc}', file=sys.stderr)
        return 1
    print(format_table(combined))
    print(format_seed_spread(combined))
    write_results(args.out, combined)
    print(f'wrote {args.out}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
