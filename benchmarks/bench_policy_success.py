"""Closed-loop success of a trained policy against training wall time (ROS-free simulator).

The whole benchmark, on two CPU cores:

    python benchmarks/make_sim_dataset.py --out runs/bench/data --episodes 50      # 200 demos, ~3 min
    python -m vla_policy.train --data runs/bench/data --out runs/bench/train_cpu \\
        --steps 6000 --max-minutes 30 --checkpoint-every 1000 --keep-checkpoints 100
    python benchmarks/bench_policy_success.py --run runs/bench/train_cpu --episodes 10

(the dataset has the front and wrist cameras and 0.5 s after each success; the trainer uses
both cameras).

This script evaluates every periodic checkpoint of the run (``checkpoints/step_*``) on every
task with evaluation seeds 1000+ and prints success against the training wall time stored in
each checkpoint; it writes ``success_curve.json`` and ``success_curve.png`` into the run.

Success at equal wall time of two trainer versions or settings: train each with the same
``--max-minutes M`` (each then finishes its own learning-rate schedule at M minutes; a periodic
checkpoint of a longer run is not a model trained for that time) and evaluate only the final
checkpoints, side by side:

    python benchmarks/bench_policy_success.py --final --run runs/bench/old_10min --run runs/bench/new_10min
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', type=Path, required=True, action='append',
                        help='training run directory (repeat with --final to compare runs)')
    parser.add_argument('--final', action='store_true',
                        help='evaluate only the final checkpoint (RUN/checkpoint) of each --run')
    parser.add_argument('--episodes', type=int, default=10, help='evaluation episodes per task and checkpoint')
    parser.add_argument('--tasks', default='all', help='comma-separated tasks or suites (workbench), or "all" (cube)')
    parser.add_argument('--every', type=int, default=1, help='evaluate every n-th checkpoint (the last always)')
    parser.add_argument('--temporal-ensemble', action='store_true', help='evaluate with temporal ensembling')
    args = parser.parse_args(argv)
    import torch

    from vla_policy.evaluate import evaluate_checkpoint
    from vla_policy.policy import read_metadata
    from vla_sim import resolve_tasks
    torch.set_num_threads(1)
    tasks = resolve_tasks(args.tasks)
    inference = {'temporal_ensemble': True} if args.temporal_ensemble else {}
    if args.final:
        for run in args.run:
            summary = evaluate_checkpoint(run / 'checkpoint', tasks, args.episodes, seed=1000, progress=False,
                                          inference=inference)
            meta = summary['checkpoint_metadata']
            sched = read_metadata(run / 'checkpoint').get('schedule') or {}
            per_task = '  '.join(f'{t} {v["success_rate"]:.0%}' for t, v in summary['tasks'].items())
            print(f'{run}: step {meta["step"]}, {meta["elapsed_s"] / 60:.1f} wall-min, last lr '
                  f'{sched.get("last_lr_ratio", "?")} of peak, overall {summary["overall"]["success_rate"]:.0%} '
                  f'[{summary["overall"]["ci95"][0]:.2f}, {summary["overall"]["ci95"][1]:.2f}]  {per_task}', flush=True)
        return 0
    if len(args.run) > 1:
        parser.error('several --run need --final')
    args.run = args.run[0]
    checkpoints = sorted((args.run / 'checkpoints').glob('step_*'))
    if not checkpoints:
        parser.error(f'no checkpoints in {args.run / "checkpoints"}; train with --checkpoint-every')
    chosen = checkpoints[::args.every]
    if chosen[-1] != checkpoints[-1]:
        chosen.append(checkpoints[-1])
    curve = []
    suffix = '_te' if args.temporal_ensemble else ''
    for ckpt in chosen:
        summary = evaluate_checkpoint(ckpt, tasks, args.episodes, seed=1000, progress=False, inference=inference)
        meta = summary['checkpoint_metadata']
        point = {'checkpoint': ckpt.name, 'step': meta['step'], 'train_minutes': round(meta['elapsed_s'] / 60, 1),
                 'cpu_minutes': round(meta['cpu_s'] / 60, 1) if meta.get('cpu_s') is not None else None,
                 'overall': summary['overall']['success_rate'], 'ci95': summary['overall']['ci95'],
                 'tasks': {t: v['success_rate'] for t, v in summary['tasks'].items()},
                 'latency_ms': {k: v for k, v in summary['latency_ms'].items() if k != 'samples'}}
        curve.append(point)
        per_task = '  '.join(f'{t} {v:.0%}' for t, v in point['tasks'].items())
        cpu = f'{point["cpu_minutes"]:>5.1f} CPU-min' if point['cpu_minutes'] is not None else ''
        print(f'step {point["step"]:>6}  {point["train_minutes"]:>5.1f} wall-min {cpu}  overall {point["overall"]:.0%} '
              f'[{point["ci95"][0]:.2f}, {point["ci95"][1]:.2f}]  {per_task}', flush=True)
        (args.run / f'success_curve{suffix}.json').write_text(json.dumps(curve, indent=2))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    minutes = [p['train_minutes'] for p in curve]
    ax.plot(minutes, [p['overall'] for p in curve], 'o-', lw=2, label='overall')
    for task in tasks:
        ax.plot(minutes, [p['tasks'][task] for p in curve], '--', lw=1, label=task)
    ax.axhline(0.8, color='grey', lw=0.8, ls=':')
    ax.set_xlabel('training wall time (min)')
    ax.set_ylabel(f'success rate ({args.episodes} episodes/task)')
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.run / f'success_curve{suffix}.png', dpi=100)
    print(f'curve written to {args.run / f"success_curve{suffix}.json"} and .png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
