"""Lock-step against real-time simulation, side by side: collection and evaluation throughput,
emergency stops, dropped recorder steps, lock-step timeouts, and whether two lock-step
collections of the same seeds record the same episodes.

    ./run.sh bench bench_lockstep.py --tasks pick_red,stack_green_on_red --episodes 3

Runs, in this order (so that a busy machine weighs on both modes alike): ``vla collect`` in
lock-step, ``vla collect --real-time-factor RTF``, ``vla collect`` in lock-step again (the
reproducibility check), then ``vla evaluate --policy expert`` in lock-step and at RTF.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def collect_row(name: str, recorded, wall: float) -> str:
    kept = [r for r in recorded if r.path]
    steps, dropped = sum(r.steps for r in kept), sum(r.dropped for r in kept)
    return (f'{name:<26}{len(recorded) / (wall / 60):>8.2f}{sum(r.success for r in recorded):>6}/'
            f'{len(recorded):<4}{sum(r.estops for r in recorded):>7}{dropped:>7} '
            f'({dropped / max(1, steps + dropped):.2%}){sum(r.timeouts for r in recorded):>9}'
            f'{wall:>8.0f}')


def episodes_by_seed(directory: Path) -> dict:
    from vla_collect.episode_io import list_episodes, open_episode
    out = {}
    for path in list_episodes(directory):
        with open_episode(path) as ep:
            out[(str(ep.attrs['task']), int(ep.attrs['seed']))] = {
                'actions': ep.actions[:], 'joints': ep.joint_positions[:],
                'images': ep.images[:], 'timestamps': ep.timestamps[:]}
    return out


def compare(a: Path, b: Path) -> list[str]:
    """Per (task, seed): equal length, largest action / joint difference, equal images."""
    first, second = episodes_by_seed(a), episodes_by_seed(b)
    lines, identical = [], 0
    for key in sorted(set(first) & set(second)):
        x, y = first[key], second[key]
        if len(x['actions']) != len(y['actions']):
            lines.append(f'  {key[0]} seed {key[1]}: {len(x["actions"])} vs {len(y["actions"])} steps')
            continue
        da = float(np.abs(x['actions'] - y['actions']).max())
        dq = float(np.abs(x['joints'] - y['joints']).max())
        same_images = float(np.mean([np.array_equal(i, j) for i, j in zip(x['images'], y['images'])]))
        identical += da == 0.0 and dq == 0.0 and same_images == 1.0
        lines.append(f'  {key[0]} seed {key[1]}: {len(x["actions"])} steps both, max |action diff| '
                     f'{da:.2e}, max |joint diff| {dq:.2e}, identical frames {same_images:.0%}')
    return [f'lock-step run 1 vs run 2: {identical} of {len(set(first) & set(second))} episodes '
            'bit-identical'] + lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', default='pick_red,stack_green_on_red')
    parser.add_argument('--episodes', type=int, default=3, help='per task (collection and evaluation)')
    parser.add_argument('--rtf', type=float, default=2.0, help='real-time factor of the comparison')
    parser.add_argument('--out', type=Path, default=None, help='keep the recordings here')
    parser.add_argument('--skip-evaluate', action='store_true')
    args = parser.parse_args(argv)

    import torch

    from vla_bringup.collect import collect
    from vla_bringup.commands import task_names
    from vla_bringup.evaluation import evaluate
    from vla_common.evaluation import simulation_text
    tasks = task_names(args.tasks)
    out = args.out or Path(tempfile.mkdtemp(prefix='bench_lockstep_'))
    print(f'CPU {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores; '
          f'{len(tasks)} task(s) x {args.episodes} episode(s); recordings in {out}', flush=True)
    rows = []
    header = (f'{"collection":<26}{"ep/min":>8}{"success":>11}{"estops":>7}{"dropped":>17}'
              f'{"timeouts":>9}{"wall s":>8}')
    for name, rtf, directory in (('lock-step', None, out / 'lockstep1'),
                                 (f'real time x{args.rtf:g}', args.rtf, out / 'realtime'),
                                 ('lock-step (again)', None, out / 'lockstep2')):
        start = time.monotonic()
        recorded = collect(tasks, args.episodes, directory, 0, rtf, 120.0, tail=0.5)
        rows.append(collect_row(name, recorded, time.monotonic() - start))
        print(rows[-1], flush=True)
    print('\n' + header + '\n' + '\n'.join(rows))
    print('\n'.join(compare(out / 'lockstep1', out / 'lockstep2')))
    if args.skip_evaluate:
        return 0
    print(f'\n{"evaluation (expert)":<26}{"ep/min":>8}{"success":>11}{"estops":>7}{"timeouts":>9}'
          f'{"wall s":>8}  simulation')
    for name, rtf in (('lock-step', None), (f'real time x{args.rtf:g}', args.rtf)):
        start = time.monotonic()
        summary = evaluate('expert', None, tasks, args.episodes, 1000, rtf, 120.0)
        wall = time.monotonic() - start
        overall = summary['overall']
        timed_out = sum(t['timeouts'] for t in summary['tasks'].values())
        print(f'{name:<26}{overall["n"] / (wall / 60):>8.2f}{overall["successes"]:>6}/{overall["n"]:<4}'
              f'{overall["estops"]:>7}{timed_out:>9}{wall:>8.0f}  '
              f'{simulation_text(summary["simulation"])}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
