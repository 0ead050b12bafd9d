"""``vla compare A.json B.json [C.json ...]``: is B (C, ...) better than A, and is n enough to say so?

Reads results JSON files of ``vla evaluate`` (or ``RUN_DIR/eval/*.json`` of ``vla demo``, or the
offline ``python -m vla_policy.evaluate``) and compares each later file with the first, per task
and overall: both success rates with 95% Wilson intervals, the difference B - A with its 95%
interval, and a test.  On the same seeds the comparison is paired (exact McNemar test on the
discordant episodes, Newcombe's paired interval, the 2x2 table shown); on different seeds it is
unpaired (Fisher's exact test) and says that the pairing was lost.  Each row gets a verdict:
B better / A better (p < alpha), no difference detected (the interval lies within +/-effect), or
underpowered (with the episodes per task that the stated effect would need at 80% power).

Results of several training seeds (``vla evaluate --checkpoint OUT`` of a ``vla train --seeds K``
run: a ``training_seeds`` entry) are compared across training seeds instead: Welch's t-test on the
per-seed success rates, which counts both the training-seed and the episode variance (see
``vla_bringup.comparison_seeds`` for the method and why), and the verdict's "needed" is training
seeds per recipe.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vla_bringup.comparison import Comparison, compare_results
from vla_common.files import atomic_write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('results', nargs='+', type=Path, metavar='RESULTS.json',
                        help='results JSON files; the first is A, each later one is compared with it')
    parser.add_argument('--effect', type=float, default=0.2,
                        help='smallest difference in success rate that matters (default 0.2): '
                             'sets "no difference detected" and the episodes an underpowered '
                             'comparison would need')
    parser.add_argument('--alpha', type=float, default=0.05, help='significance level (default 0.05)')
    parser.add_argument('--json', type=Path, help='also write the comparison as JSON here')


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f'{path}: no such file (give results JSON files of `vla evaluate`)') from None
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not valid JSON ({exc})') from None
    if not isinstance(data, dict) or 'tasks' not in data:
        raise ValueError(f'{path}: not a results JSON of `vla evaluate` (no "tasks")')
    return data


def format_comparison(name_a: str, name_b: str, rows: list[Comparison]) -> str:
    """A terminal table: rates with intervals, difference, test, verdict, and the 2x2 tables (or,
    for several training seeds, each seed's rate)."""
    seeds = any(r.seeds_a is not None or r.seeds_b is not None for r in rows)
    lines = [f'A = {name_a}', f'B = {name_b}',
             f'{"task":<20}{"A":>16}{"B":>16}{"B - A  [95% CI]":>24}{"p":>9}  verdict']
    unit = 'training seeds per recipe' if seeds else 'episodes per policy'
    for row in rows:
        a = f'{row.successes_a}/{row.n_a} {row.successes_a / row.n_a:.0%}'
        b = f'{row.successes_b}/{row.n_b} {row.successes_b / row.n_b:.0%}'
        diff = f'{row.difference:+.2f} [{row.ci95[0]:+.2f}, {row.ci95[1]:+.2f}]'
        text = row.verdict + (f' (~{row.needed} {unit} for +/-effect)' if row.needed else '')
        lines.append(f'{row.name:<20}{a:>16}{b:>16}{diff:>24}{row.p_value:>9.4f}  {text}')
    if seeds:
        lines.append('several training seeds: Welch t-test on the per-seed success rates (each '
                     'rate carries its episodes\' noise, so both sources of variance count); '
                     'B - A is the difference of the means over seeds')
        for row in rows:
            parts = []
            for side, spread in (('A', row.seeds_a), ('B', row.seeds_b)):
                if spread is None:
                    parts.append(f'{side}: one model (episode variance only)')
                else:
                    low, high = spread.ci95()
                    parts.append(f'{side}: {" ".join(f"{r:.0%}" for r in spread.rates)} mean '
                                 f'{spread.mean:.0%} sd {spread.std:.2f} [{low:.2f}, {high:.2f}]')
            lines.append(f'  {row.name:<18} ' + '; '.join(parts) + f'; df {row.df:.1f}')
        if any(r.seeds_a is None or r.seeds_b is None for r in rows):
            lines.append('NOTE: one side is a single model: its training-seed variance is unknown and '
                         'counted as 0 (right for the scripted baseline; for a trained model train '
                         'it with --seeds K too)')
        return '\n'.join(lines)
    paired = [r for r in rows if r.table is not None]
    if paired:
        lines.append('paired on seeds (exact McNemar); discordant episodes per task:')
        for row in paired:
            t = row.table
            lines.append(f'  {row.name:<18} both {t.both:>3}  A only {t.a_only:>3}  '
                         f'B only {t.b_only:>3}  neither {t.neither:>3}')
    unpaired = [r.name for r in rows if r.table is None]
    if unpaired:
        lines.append(f'WARNING: different seeds for {", ".join(unpaired)}: the pairing is lost, '
                     'compared unpaired (Fisher exact), which needs more episodes')
    return '\n'.join(lines)


def run(args: argparse.Namespace, rest: list[str]) -> int:
    from vla_bringup.commands import CommandError
    if len(args.results) < 2:
        raise CommandError('give at least two results JSON files: A.json B.json')
    if not 0 < args.effect <= 1 or not 0 < args.alpha < 1:
        raise CommandError(f'--effect must be in (0, 1] and --alpha in (0, 1), got {args.effect}, '
                           f'{args.alpha}')
    try:
        base = _load(args.results[0])
        out = {'a': str(args.results[0]), 'effect': args.effect, 'alpha': args.alpha,
               'comparisons': []}
        for path in args.results[1:]:
            rows = compare_results(base, _load(path), args.effect, args.alpha)
            print(format_comparison(base.get('policy', str(args.results[0])),
                                    _load(path).get('policy', str(path)), rows))
            out['comparisons'].append({'b': str(path),
                                       'tasks': {r.name: r.to_json() for r in rows}})
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        atomic_write_json(args.json, out)
        print(f'wrote {args.json}', file=sys.stderr)
    return 0
