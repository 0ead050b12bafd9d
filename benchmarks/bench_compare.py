"""How many episodes the sequential test needs to decide, against the fixed 10 or 25 per task.

    ./run.sh bench bench_compare.py --simulate [--runs 2000]
    ./run.sh bench bench_compare.py --a RUN/checkpoints/step_0002000 --b RUN/checkpoint --episodes 25
    ./run.sh bench bench_compare.py --a eval/baseline.json --b eval/policy.json

Both modes use the test ``vla evaluate --until-decided`` uses (``vla_bringup.comparison``'s
:class:`SequentialMcNemar` with that command's defaults: odds 3 among discordant pairs, alpha 0.05
two-sided, power 0.8), walking the seeds in the order of :class:`SequentialPlan` (seed by seed
across the tasks) and stopping at the fixed design's size at most; the fixed design is the exact
McNemar test on all of its pairs (``vla compare``).

``--simulate``: simulated Bernoulli policies with known success rates per task, paired through a
shared start state (with probability ``--rho`` both policies see the same uniform draw, as an easy
or hard start state would make them succeed or fail together).  Prints, per scenario and design
(10 or 25 episodes per task on 4 tasks: 40 or 100 pairs), how often each design claims "B better"
or "A better" (an error where the rates are equal or the claim has the wrong sign), and the
average number of pairs the sequential test used against the fixed design's.

``--a``/``--b``: two checkpoints (evaluated here, in process, ROS-free as ``vla_policy.evaluate``,
episode by episode in the sequential order, outcomes cached in ``--cache`` so a run can resume) or
two results JSON evaluated on the same seeds (``vla evaluate --json``).  Prints the fixed designs'
verdicts and the pairs the sequential test needed to decide.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from vla_bringup.comparison import (A_BETTER, B_BETTER, NO_DIFFERENCE, UNDERPOWERED,
                                    SequentialMcNemar, compare_outcomes, mcnemar_exact)

TASKS = ('pick_red', 'pick_green', 'pick_blue', 'stack_green_on_red')
DESIGNS = (10, 25)  # episodes per task of the fixed design (and the sequential test's maximum)
#: name -> (A's success rate per task, B's), in TASKS order
SCENARIOS = {
    'equal 0.7 (H0)': ((0.7,) * 4, (0.7,) * 4),
    'equal 0.9 (H0)': ((0.9,) * 4, (0.9,) * 4),
    'demo: expert 1.0 vs policy 33/40': ((1.0,) * 4, (0.9, 0.9, 0.9, 0.6)),
    'designed: 0.4 -> 0.8': ((0.4,) * 4, (0.8,) * 4),
    '0.5 -> 0.7': ((0.5,) * 4, (0.7,) * 4),
    '0.6 -> 0.7': ((0.6,) * 4, (0.7,) * 4),
    'mixed tasks, B +0.15': ((0.9, 0.8, 0.6, 0.3), (1.0, 0.95, 0.75, 0.45)),
}


def new_test(pairs: int, odds: float, alpha: float, power: float) -> SequentialMcNemar:
    return SequentialMcNemar(odds=odds, alpha=alpha, beta=1.0 - power, max_pairs=pairs)


def fixed_claim(pairs: list[tuple[bool, bool]], alpha: float) -> str | None:
    """The fixed design's claim: exact McNemar on every pair, the sign of the discordant split."""
    a_only = sum(a and not b for a, b in pairs)
    b_only = sum(b and not a for a, b in pairs)
    if mcnemar_exact(a_only, b_only) < alpha:
        return B_BETTER if b_only > a_only else A_BETTER
    return None


def simulate(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    print(f'sequential test: odds {args.odds:g}, alpha {args.alpha:g} (two-sided), power '
          f'{args.power:g}; pairs seed by seed across {len(TASKS)} tasks; shared start state with '
          f'probability rho={args.rho:g}; {args.runs} simulated runs per row')
    print(f'{"scenario":<34}{"design":>8}{"fixed: B>A":>12}{"A>B":>7}{"seq: B>A":>10}{"A>B":>7}'
          f'{"no diff":>9}{"at max":>8}{"seq pairs mean":>16}{"median":>8}{"saved":>7}')
    for name, (rates_a, rates_b) in SCENARIOS.items():
        for per_task in DESIGNS:
            n = per_task * len(TASKS)
            fixed = {B_BETTER: 0, A_BETTER: 0}
            seq = {B_BETTER: 0, A_BETTER: 0, NO_DIFFERENCE: 0, UNDERPOWERED: 0}
            used = []
            for _ in range(args.runs):
                pairs = []
                for _seed in range(per_task):
                    for pa, pb in zip(rates_a, rates_b):
                        u = rng.random()
                        a = u < pa
                        b = u < pb if rng.random() < args.rho else rng.random() < pb
                        pairs.append((a, b))
                claim = fixed_claim(pairs, args.alpha)
                if claim:
                    fixed[claim] += 1
                test = new_test(n, args.odds, args.alpha, args.power)
                test.run(pairs)
                seq[test.decision] += 1
                used.append(test.pairs)
            share = {k: v / args.runs for k, v in {**fixed, **{f's{k}': v for k, v in seq.items()}}.items()}
            mean = statistics.fmean(used)
            print(f'{name:<34}{f"{per_task}/task":>8}{share[B_BETTER]:>12.3f}{share[A_BETTER]:>7.3f}'
                  f'{share["s" + B_BETTER]:>10.3f}{share["s" + A_BETTER]:>7.3f}'
                  f'{share["s" + NO_DIFFERENCE]:>9.3f}{share["s" + UNDERPOWERED]:>8.3f}'
                  f'{f"{mean:.1f} of {n}":>16}{statistics.median(used):>8.0f}{1 - mean / n:>7.0%}',
                  flush=True)


# -- real policies ------------------------------------------------------------------------------
def order(tasks: list[str], seed: int, per_task: int) -> list[tuple[str, int]]:
    """SequentialPlan's order: seed by seed across the tasks."""
    return [(t, s) for s in range(seed, seed + per_task) for t in tasks]


def outcomes_of_json(path: Path) -> dict[tuple[str, int], bool]:
    from vla_bringup.comparison import outcomes_by_task
    data = json.loads(path.read_text())
    return {(t, s): ok for t, by_seed in outcomes_by_task(data).items() for s, ok in by_seed.items()}


def evaluate_checkpoints(paths: dict[str, Path], keys: list[tuple[str, int]], cache: Path
                         ) -> dict[str, dict[tuple[str, int], bool]]:
    """Each checkpoint on each (task, seed) in ``keys`` order, in process; cached per episode."""
    import torch

    from vla_policy.evaluate import rollout
    from vla_policy.policy import VLAPolicy
    from vla_sim import SimEnv
    torch.set_num_threads(1)
    cache.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[tuple[str, int], bool]] = {label: {} for label in paths}
    files = {label: cache / f'{label}.jsonl' for label in paths}
    for label, file in files.items():
        if file.is_file():
            for line in file.read_text().splitlines():
                row = json.loads(line)
                if row['checkpoint'] == str(paths[label]):
                    done[label][(row['task'], row['seed'])] = row['success']
    todo = [k for k in keys if any(k not in done[label] for label in paths)]
    if not todo:
        return done
    policies = {label: VLAPolicy.from_pretrained(path, device='cpu') for label, path in paths.items()}
    for policy in policies.values():
        policy.trace_for_inference()
    cfg = next(iter(policies.values())).config
    size = int(max(cfg.source_image_size)) if cfg.source_image_size else 224
    env = SimEnv(image_size=size, cameras=('front', *cfg.extra_cameras))
    start = time.monotonic()
    try:
        with torch.inference_mode():
            for i, (task, seed) in enumerate(todo):
                for label, policy in policies.items():
                    if (task, seed) in done[label]:
                        continue
                    episode, _ = rollout(env, policy, task, seed)
                    done[label][(task, seed)] = episode.success
                    with files[label].open('a') as f:
                        f.write(json.dumps({'checkpoint': str(paths[label]), 'task': task,
                                            'seed': seed, 'success': episode.success,
                                            'length': episode.length}) + '\n')
                print(f'  {i + 1}/{len(todo)} {task} seed {seed}: '
                      + ', '.join(f'{label} {"success" if done[label][(task, seed)] else "fail"}'
                                  for label in paths)
                      + f' ({time.monotonic() - start:.0f} s)', file=sys.stderr, flush=True)
    finally:
        env.close()
    return done


def real(args: argparse.Namespace) -> None:
    tasks = list(TASKS) if args.tasks == 'all' else args.tasks.split(',')
    sources = {'A': args.a, 'B': args.b}
    keys = order(tasks, args.first_seed, args.episodes)
    outcomes: dict[str, dict[tuple[str, int], bool]] = {}
    checkpoints = {k: p for k, p in sources.items() if p.is_dir()}
    for label, path in sources.items():
        if label not in checkpoints:
            outcomes[label] = outcomes_of_json(path)
    if checkpoints:
        print(f'evaluating {", ".join(f"{k} = {p}" for k, p in checkpoints.items())} in process on '
              f'{len(tasks)} tasks x seeds {args.first_seed}..{args.first_seed + args.episodes - 1}',
              file=sys.stderr)
        outcomes.update(evaluate_checkpoints(checkpoints, keys, args.cache))
    for label, path in sources.items():
        print(f'{label} = {path}: ' + ', '.join(
            f'{t} {sum(outcomes[label].get((t, s), False) for s in range(args.first_seed, args.first_seed + args.episodes))}'
            f'/{sum((t, s) in outcomes[label] for s in range(args.first_seed, args.first_seed + args.episodes))}'
            for t in tasks))
    print(f'sequential test: {new_test(1, args.odds, args.alpha, args.power).rule().split(", at most")[0]}')
    for per_task in sorted({*DESIGNS, args.episodes}):
        plan = order(tasks, args.first_seed, per_task)
        if per_task > args.episodes or not all(k in outcomes['A'] and k in outcomes['B'] for k in plan):
            print(f'{per_task} per task: not every pair was evaluated (evaluate {per_task} per task)')
            continue
        pairs = [(outcomes['A'][k], outcomes['B'][k]) for k in plan]
        fixed = compare_outcomes('overall', dict(zip(plan, (a for a, _ in pairs))),
                                 dict(zip(plan, (b for _, b in pairs))))
        t = fixed.table
        test = new_test(len(plan), args.odds, args.alpha, args.power)
        test.run(pairs)
        print(f'{per_task} per task ({len(plan)} pairs): fixed design (exact McNemar): {fixed.verdict}, '
              f'A {fixed.successes_a}/{fixed.n_a} B {fixed.successes_b}/{fixed.n_b}, B - A '
              f'{fixed.difference:+.2f} [{fixed.ci95[0]:+.2f}, {fixed.ci95[1]:+.2f}], p={fixed.p_value:.3g} '
              f'(both {t.both}, A only {t.a_only}, B only {t.b_only}, neither {t.neither}); '
              f'sequential: {test.decision} after {test.pairs} of {len(plan)} pairs '
              f'({test.pairs / len(tasks):.1f} per task; A only {test.a_only}, B only {test.b_only})')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--simulate', action='store_true', help='simulated Bernoulli policies (fast)')
    parser.add_argument('--runs', type=int, default=2000, help='simulated runs per scenario and design')
    parser.add_argument('--rho', type=float, default=0.5,
                        help='simulation: probability that both policies see the same start-state draw')
    parser.add_argument('--seed', type=int, default=0, help='simulation random seed')
    parser.add_argument('--a', type=Path, help='checkpoint directory or results JSON of A')
    parser.add_argument('--b', type=Path, help='checkpoint directory or results JSON of B')
    parser.add_argument('--tasks', default='all')
    parser.add_argument('--episodes', type=int, default=25, help='episodes per task to evaluate (at most)')
    parser.add_argument('--first-seed', type=int, default=1000)
    parser.add_argument('--cache', type=Path, default=Path('runs/bench_compare'),
                        help='per-episode outcomes of evaluated checkpoints (resumable)')
    parser.add_argument('--odds', type=float, default=3.0)
    parser.add_argument('--alpha', type=float, default=0.05)
    parser.add_argument('--power', type=float, default=0.8)
    args = parser.parse_args(argv)
    if args.simulate:
        simulate(args)
    elif args.a and args.b:
        real(args)
    else:
        parser.error('give --simulate, or --a and --b')
    return 0


if __name__ == '__main__':
    sys.exit(main())
