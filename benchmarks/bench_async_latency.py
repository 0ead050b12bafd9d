"""Success and smoothness of a checkpoint under injected inference latency, per stitching policy.

    ./run.sh bench bench_async_latency.py --checkpoint runs/demo/checkpoint \\
        --latency-ms 0 50 100 200 400 --modes sync latency crossfade ensemble --episodes 10

ROS-free (the MuJoCo simulator of vla_sim with the policy in the loop, as ``vla_policy.evaluate``)
so the outcome does not depend on the machine: an inference started at tick t on the
observation of tick t lands ``ceil(latency / period)`` simulated ticks later
(:func:`vla_control.chunking.rollout_with_latency`), whatever the CPU needs for it.

* ``sync``: today's synchronous controller: the robot holds while a chunk is computed, then
  serves ``n_action_steps`` of it (queue) and asks again;
* ``latency``, ``crossfade``, ``ensemble``: inference runs continuously beside the control tick
  and :class:`vla_control.chunking.ChunkStitcher` joins each chunk to the plan (see there).

Prints per mode and latency: success k/n with its 95% Wilson interval, the share of hold ticks,
the mean and the largest change of commanded joint velocity between ticks (jerk, rad/s per tick;
the mean over ticks of the largest joint's change), and the paired verdict against the
zero-latency run of the same mode (exact McNemar on the same seeds); writes ``--out``/results.json
and ``--out``/latency.png (success and mean jerk against latency).  Seeds 1000+ (clear of
demonstrations).  ``vla report RUN_DIR`` draws the same plot in its report when the JSON is at
``RUN_DIR/eval/async_latency.json`` (``--out RUN_DIR/eval --name async_latency.json``) or is given
with ``vla report RUN_DIR --latency-bench FILE``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


class CommandRecorder:
    """The simulator with every commanded action of the current episode kept (``commands``)."""

    def __init__(self, env) -> None:
        self.env, self.commands = env, []

    def reset(self, *args, **kwargs):
        self.commands = []
        return self.env.reset(*args, **kwargs)

    def step(self, action):
        self.commands.append(action)
        return self.env.step(action)

    def __getattr__(self, name):
        return getattr(self.env, name)


def mean_jerk(commands, period: float) -> float:
    """Mean over ticks of the largest joint's change of commanded velocity (rad/s per tick), the
    same quantity whose maximum ``rollout_with_latency`` reports as ``max_jerk``."""
    import numpy as np
    if len(commands) < 3:
        return 0.0
    velocity = np.diff(np.asarray(commands, dtype=np.float64), axis=0) / period
    return float(np.abs(np.diff(velocity, axis=0)).max(axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', type=Path, required=True, help='checkpoint directory')
    parser.add_argument('--latency-ms', type=float, nargs='+', default=[0, 50, 100, 200, 400])
    parser.add_argument('--modes', nargs='+', default=['sync', 'latency', 'crossfade', 'ensemble'],
                        choices=['sync', 'latency', 'crossfade', 'ensemble'])
    parser.add_argument('--tasks', default='all', help='comma-separated tasks or "all"')
    parser.add_argument('--episodes', type=int, default=10, help='episodes per task')
    parser.add_argument('--spike-ms', type=float, default=0.0, help='extra delay of every 5th inference')
    parser.add_argument('--replan', choices=['auto', 'every'], default='auto',
                        help='asynchronous modes: start the next inference when the plan has at most '
                             'chunk_size - n_action_steps ticks left, or more if the latency needs it '
                             '(auto, vla_control.chunking.Replanner), or as soon as the previous one '
                             'is done (every)')
    parser.add_argument('--max-acceleration', type=float, nargs='+', default=[0.0], metavar='A',
                        help='follow each action within this acceleration (one value, or one per joint; '
                             'the controller\'s max_acceleration, vla_control.smoothing); 0 = off')
    parser.add_argument('--out', type=Path, default=Path('runs/bench_async'), help='results directory')
    parser.add_argument('--name', default='results.json', help='file name of the results JSON in --out')
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from vla_control.chunking import ChunkStitcher, LatencyModel, Replanner, rollout_with_latency
    from vla_policy.policy import VLAPolicy
    from vla_sim import TASKS, SimEnv
    from vla_bringup.comparison import PairedTable, mcnemar_exact
    from vla_common.stats import rate_summary
    torch.set_num_threads(1)
    policy = VLAPolicy.from_pretrained(args.checkpoint, device='cpu')
    cfg = policy.config
    env = SimEnv(image_size=int(cfg.source_image_size[0]) if cfg.source_image_size else 224,
                 cameras=('front', *cfg.extra_cameras))
    env = CommandRecorder(env)
    tasks = list(TASKS) if args.tasks == 'all' else args.tasks.split(',')
    period = 1.0 / cfg.fps
    from vla_control.smoothing import MotionSmoother, per_joint_limit
    from vla_common.robot import default_robot
    accel = per_joint_limit('--max-acceleration', args.max_acceleration, len(env.action_low))
    smoother = None if accel is None else MotionSmoother(
        default_robot().max_velocity, accel, period)
    results: dict[str, dict[str, dict]] = {}
    print(f'{args.checkpoint}: {len(tasks)} task(s) x {args.episodes} episodes, period {period * 1e3:.1f} ms, '
          f'spikes +{args.spike_ms:g} ms every 5th inference', flush=True)
    print(f'{"mode":<10}{"latency":>9}{"success":>12}{"95% CI":>16}{"holds":>8}{"mean jerk":>10}{"max jerk":>10}'
          f'{"wall s":>8}')
    with torch.inference_mode():
        for mode in args.modes:
            results[mode] = {}
            for ms in args.latency_ms:
                start = time.perf_counter()
                episodes = []
                for task in tasks:
                    for i in range(args.episodes):
                        stitcher = ChunkStitcher('queue' if mode == 'sync' else mode, period, len(env.action_low),
                                                 max_age=1.0, blend=4, decay=cfg.ensemble_decay,
                                                 n_action_steps=cfg.n_action_steps)
                        latency = LatencyModel(base=ms / 1e3, spike=args.spike_ms / 1e3,
                                               spike_every=5 if args.spike_ms else 0)
                        replan = 0 if mode == 'sync' else Replanner(
                            cfg.chunk_size, cfg.n_action_steps, period, every=args.replan == 'every')
                        episode = rollout_with_latency(env, policy, task, 1000 + i, stitcher, latency,
                                                       replan=replan, smoother=smoother)
                        episode['mean_jerk'] = round(mean_jerk(env.commands, period), 4)
                        episodes.append(episode)
                summary = rate_summary(sum(e['success'] for e in episodes), len(episodes))
                holds = sum(e['holds'] for e in episodes) / max(1, sum(e['length'] for e in episodes))
                jerk = max(e['max_jerk'] for e in episodes)
                ticks = sum(max(e['length'] - 2, 0) for e in episodes)
                mean = sum(e['mean_jerk'] * max(e['length'] - 2, 0) for e in episodes) / max(1, ticks)
                results[mode][str(ms)] = {**summary, 'hold_share': round(holds, 4), 'max_jerk': round(jerk, 3),
                                          'mean_jerk': round(mean, 4), 'episodes': episodes}
                versus = ''
                if str(args.latency_ms[0]) != str(ms):  # paired with the first latency of this mode
                    zero = {(e['task'], e['seed']): e['success'] for e in results[mode][str(args.latency_ms[0])]['episodes']}
                    table = PairedTable.from_outcomes([zero[(e['task'], e['seed'])] for e in episodes],
                                                      [e['success'] for e in episodes])
                    versus = f'  vs {args.latency_ms[0]:g} ms: McNemar p={mcnemar_exact(table.a_only, table.b_only):.3f}'
                print(f'{mode:<10}{ms:>7.0f}ms{summary["successes"]:>6}/{summary["n"]:<3} {summary["success_rate"]:>3.0%}'
                      f'  [{summary["ci95"][0]:.2f}, {summary["ci95"][1]:.2f}]{holds:>8.1%}{mean:>10.3f}{jerk:>10.2f}'
                      f'{time.perf_counter() - start:>8.0f}{versus}', flush=True)
    env.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / args.name).write_text(json.dumps(
        {'checkpoint': str(args.checkpoint), 'tasks': tasks, 'episodes_per_task': args.episodes,
         'spike_ms': args.spike_ms, 'replan': args.replan,
         'max_acceleration': None if accel is None else accel.tolist(), 'results': results}, indent=1))
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for mode, rows in results.items():
            xs = [float(k) for k in rows]
            a.errorbar(xs, [r['success_rate'] for r in rows.values()],
                       yerr=np.array([[r['success_rate'] - r['ci95'][0], r['ci95'][1] - r['success_rate']]
                                      for r in rows.values()]).T, marker='o', capsize=3, label=mode)
            b.plot(xs, [r['mean_jerk'] for r in rows.values()], marker='o', label=mode)
        a.set(xlabel='injected inference latency (ms)', ylabel='success (95% CI)', ylim=(0, 1.05))
        b.set(xlabel='injected inference latency (ms)', ylabel='mean jerk (rad/s per tick)')
        a.legend()
        fig.tight_layout()
        fig.savefig(args.out / 'latency.png', dpi=100)
    except ImportError:
        pass
    print(f'wrote {args.out / args.name}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
