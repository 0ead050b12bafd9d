"""How close does a policy get to the workbench's reach marker, and does it follow it at all?

    python benchmarks/bench_reach_probe.py --checkpoint RUN/checkpoint [--episodes 20] [--seed 1000]
        [--train-episodes 6] [--json OUT.json]

Success on ``reach_marker`` (tool-centre point within 1 cm of the 1 cm marker) says little while a
policy misses: this probe runs the task ROS-free in the simulator (as ``vla_policy.evaluate``)
and records, per episode, the tool's closest approach to the marker and where it was then. It
prints the number within 1 cm (the task's success), the median closest approach, the number within
2 cm, and, over the held-out layouts, the correlation between the marker's coordinates and those
of the closest approach per axis (x: depth from the front camera, y: across, z: height): near 0,
the policy goes to the same place whatever the layout; near 1, it follows the marker. With
``--train-episodes N`` it also runs N layouts the demonstrations came from (seeds 0..N-1, as
``make_sim_dataset.py`` records them): a policy that reaches those but not new ones memorised.

Evaluation seeds start at 1000 (clear of the demonstrations' 0..). One torch thread, as the
evaluator. Prints the figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def run_layouts(policy, env, seeds: list[int]) -> list[dict]:
    from vla_policy.evaluate import rollout
    from vla_sim import workbench
    rows = []
    for seed in seeds:
        best = {'m': np.inf, 'point': None}

        def track(env, tick: int) -> None:
            if not tick:  # after the reset: the policy has not moved yet
                return
            state = env.privileged_state()
            distance = workbench.marker_distance(state)
            if distance < best['m']:
                best['m'], best['point'] = distance, np.asarray(state['ee_pos'], dtype=np.float64).copy()

        episode, _ = rollout(env, policy, 'reach_marker', seed, on_tick=track)
        marker = np.asarray(env.privileged_state()['objects']['marker']['pos'], dtype=np.float64)
        rows.append({'seed': seed, 'marker': marker.round(4).tolist(), 'closest_point': best['point'].round(4).tolist(),
                     'closest_m': round(float(best['m']), 4), 'success': episode.success})
        print(f"seed {seed}: closest {best['m'] * 100:.1f} cm{' (success)' if episode.success else ''}", file=sys.stderr)
    return rows


def summary(rows: list[dict]) -> dict:
    closest = np.array([r['closest_m'] for r in rows])
    out = {'episodes': len(rows), 'success': int(sum(r['success'] for r in rows)),
           'median_closest_cm': round(float(np.median(closest)) * 100, 1),
           'within_2cm': int((closest < 0.02).sum())}
    if len(rows) > 2:
        marker = np.array([r['marker'] for r in rows])
        point = np.array([r['closest_point'] for r in rows])
        out['corr_xyz'] = [round(float(np.corrcoef(marker[:, i], point[:, i])[0, 1]), 2) for i in range(3)]
        out['mean_abs_error_xyz_cm'] = (np.abs(marker - point).mean(0) * 100).round(1).tolist()
        out['marker_spread_sd_cm'] = (marker.std(0) * 100).round(1).tolist()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', type=Path, required=True, help='checkpoint directory (or training run)')
    parser.add_argument('--episodes', type=int, default=20, help='held-out layouts (default 20)')
    parser.add_argument('--seed', type=int, default=1000, help='first held-out seed (default 1000)')
    parser.add_argument('--train-episodes', type=int, default=0,
                        help='also run this many demonstration layouts (seeds 0..N-1; default 0)')
    parser.add_argument('--json', type=Path, help='write the per-episode rows and summaries here')
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.train_episodes < 0:
        parser.error('--episodes must be >= 1 and --train-episodes >= 0')

    import torch

    from vla_policy.evaluate import sim_env_for
    from vla_policy.policy import VLAPolicy
    torch.set_num_threads(1)
    policy = VLAPolicy.from_pretrained(args.checkpoint)
    policy.eval()
    env = sim_env_for(policy.config)  # as vla_policy.evaluate renders and acts
    try:
        held = run_layouts(policy, env, list(range(args.seed, args.seed + args.episodes)))
        trained = run_layouts(policy, env, list(range(args.train_episodes)))
    finally:
        env.close()
    result = {'checkpoint': str(args.checkpoint), 'held_out': summary(held), 'held_out_rows': held}
    if trained:
        result['training_layouts'] = summary(trained)
        result['training_layout_rows'] = trained
    h = result['held_out']
    print(f"held out (seeds {args.seed}-{args.seed + args.episodes - 1}): {h['success']}/{h['episodes']} within "
          f"1 cm, median closest approach {h['median_closest_cm']} cm, {h['within_2cm']} within 2 cm"
          + (f", corr(marker, closest) x/y/z {h['corr_xyz']}" if 'corr_xyz' in h else ''))
    if trained:
        t = result['training_layouts']
        print(f"training layouts (seeds 0-{args.train_episodes - 1}): {t['success']}/{t['episodes']} within 1 cm, "
              f"median {t['median_closest_cm']} cm")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
