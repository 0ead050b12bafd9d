"""``vla demo``: the whole pipeline in simulation, one resumable stage after another.

    collect   scripted-expert demonstrations for every task, over ROS      -> RUN_DIR/data
    train     the CPU default policy by behavioural cloning                 -> RUN_DIR/checkpoint
              (``--seeds K``: K models, training seeds 0..K-1    -> RUN_DIR/checkpoint/seed_<S>/)
    evaluate  the policy behind the safety gate, on held-out seeds, over ROS -> RUN_DIR/eval/policy.json
    baseline  the scripted expert on the same seeds                         -> RUN_DIR/eval/baseline.json
    report    plots, tables and rollouts                                    -> RUN_DIR/report/index.html

Each stage runs through the same ``vla`` command a user would type, records its wall time
and status in ``RUN_DIR/stages.json``, and is skipped on a rerun once it has completed
(``--redo STAGE`` runs it and the stages after it again).

Collection and both evaluations run the simulator in lock-step with the nodes (a tick advances
when its command has arrived), so their episodes do not depend on how fast this machine is;
``--timing real-time`` runs them against the wall clock (``--collect-speed``, ``--eval-speed``)
as before, e.g. to measure the controller's latency under real deadlines.  The summary and the
report name the timing and the CPU (torch's kernel level and the core count).

``--seeds K`` trains K models on the same demonstrations (``vla train --seeds K``) and evaluates
each on the same evaluation seeds (``vla evaluate --checkpoint RUN_DIR/checkpoint`` of such a run):
the summary and the report give each model's success, their mean, min/max and the Student-t
interval of the mean across training seeds beside the pooled per-episode Wilson intervals, and
the verdict against the scripted baseline is Welch's t-test on the per-seed rates
(:mod:`vla_bringup.comparison_seeds`).  The training budget is per model.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vla_common.files import atomic_write_json

#: demonstrations use seeds from 0, evaluations from here: the two never overlap
EVAL_SEED = 1000
#: camera images the demo's simulator renders and records (px, square)
IMAGE_SIZE = 224
#: std (rad) of the noise the scripted expert executes while its clean command is recorded
#: (DART): on the same 200 demonstrations and 4,175 steps, 63/80 ROS-free against 45/80 without
#: (paired on the same seeds, exact McNemar p = 0.0009)
EXEC_NOISE = 0.01


@dataclass(frozen=True)
class DemoSize:
    demos_per_task: int  # scripted demonstrations per task
    train_steps: int  # optimiser steps
    # wall-clock budget of training, `vla train --max-minutes` (see train_arguments: the one
    # place that decides how steps and minutes reach the trainer)
    train_minutes: float
    eval_episodes: int  # evaluation episodes per task (policy and baseline alike)


SIZES = {
    # 10000 steps of 32 samples end first on a fast machine (~11 min), 10.5 minutes on a 2-core
    # AVX2 one (~3,800 steps; with 11 minutes and picks recorded 0.5 s past success the whole
    # demo took 30.9 min there)
    'full': DemoSize(demos_per_task=50, train_steps=10000, train_minutes=10.5, eval_episodes=10),
    # quick: the budget only caps a slow machine (300 steps end first on a 2-core laptop); 1.5 min
    # was refused as too short for a warmup on a 3x slower or busy machine
    'quick': DemoSize(demos_per_task=5, train_steps=300, train_minutes=3.0, eval_episodes=2),
}

STAGES = ('collect', 'train', 'evaluate', 'baseline', 'report')


class StageFailed(RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument('--quick', action='store_true',
                        help='a first look in about 5 minutes: fewer demonstrations, steps and episodes')
    parser.add_argument('--out', type=Path, default=Path('runs/demo'), help='run directory (default: runs/demo)')
    parser.add_argument('--tasks', default='all', help='comma-separated task names or "all"')
    parser.add_argument('--demos', type=int, help='demonstrations per task (overrides the size)')
    parser.add_argument('--steps', type=int, help='training steps (overrides the size)')
    parser.add_argument('--train-minutes', type=float,
                        help='wall-clock cap on training in minutes (overrides the size)')
    parser.add_argument('--episodes', type=int, help='evaluation episodes per task (overrides the size)')
    parser.add_argument('--timing', choices=('lockstep', 'real-time'), default='lockstep',
                        help='lockstep (default): the simulator waits for the nodes every tick, the '
                             'same episodes on any machine; real-time: it runs against the wall '
                             'clock at --collect-speed / --eval-speed')
    parser.add_argument('--collect-speed', type=float, default=2.0,
                        help='with --timing real-time: simulator real-time factor while collecting '
                             '(runs on sim time, /clock)')
    parser.add_argument('--eval-speed', type=float, default=1.0,
                        help='with --timing real-time: simulator real-time factor while evaluating '
                             '(1.0: the controller meets wall-clock deadlines as on a real robot)')
    parser.add_argument('--image-size', type=int, default=IMAGE_SIZE, metavar='PX',
                        help=f'camera images the simulator renders and the demonstrations store '
                             f'(default {IMAGE_SIZE}); the policy is evaluated at the same size')
    parser.add_argument('--exec-noise', type=float, default=EXEC_NOISE, metavar='RAD',
                        help=f'`vla collect --exec-noise`: noise the scripted expert executes while '
                             f'its clean command is recorded (DART; default {EXEC_NOISE:g})')
    parser.add_argument('--preset', default='cpu',
                        help='policy preset for `vla train` (default: cpu; clip-bert needs local weights)')
    parser.add_argument('--seeds', type=int, default=1, metavar='K',
                        help='train K models on the same demonstrations (training seeds 0..K-1, '
                             '`vla train --seeds K`) and evaluate each on the same evaluation '
                             'seeds; the summary and the report show the mean success and its '
                             'spread across training seeds, and the verdict against the baseline '
                             'uses Welch\'s t-test on the per-seed rates. The training budget '
                             '(--train-minutes, --steps) is per model, so the train stage takes up '
                             'to K times as long (default 1: one model)')
    parser.add_argument('--redo', choices=STAGES, help='run this stage and every later one again')


def train_arguments(args: argparse.Namespace, size: DemoSize) -> list[str]:
    """How long the train stage trains: ``--steps`` and ``--max-minutes``; `vla train` completes
    its learning-rate schedule over whichever ends first, so a slow machine gets fewer steps but
    a finished schedule.  To let the budget alone decide, drop ``--steps`` here (unless the user
    gave one)."""
    steps = args.steps or size.train_steps
    return ['--steps', str(steps), '--max-minutes', str(args.train_minutes or size.train_minutes)]


def timing_arguments(args: argparse.Namespace, speed: float) -> list[str]:
    """Simulator timing of a collect/evaluate stage: lock-step (no flag) or real time."""
    return [] if args.timing == 'lockstep' else ['--real-time-factor', str(speed)]


def stage_commands(args: argparse.Namespace, run_dir: Path) -> dict[str, list[str]]:
    size = SIZES['quick' if args.quick else 'full']
    demos = args.demos or size.demos_per_task
    episodes = args.episodes or size.eval_episodes
    collect_timing = timing_arguments(args, args.collect_speed)
    eval_timing = timing_arguments(args, args.eval_speed)
    return {
        'collect': ['collect', '--tasks', args.tasks, '--episodes', str(demos), '--seed', '0',
                    '--out', str(run_dir / 'data'), '--image-size', str(args.image_size),
                    *(['--exec-noise', f'{args.exec_noise:g}'] if args.exec_noise else []),
                    *collect_timing],
        'train': ['train', '--data', str(run_dir / 'data'), '--out', str(run_dir / 'checkpoint'),
                  '--preset', args.preset, *train_arguments(args, size),
                  *(['--seeds', str(args.seeds)] if args.seeds > 1 else [])],
        'evaluate': ['evaluate', '--checkpoint', str(run_dir / 'checkpoint'), '--tasks', args.tasks,
                     '--episodes', str(episodes), '--seed', str(EVAL_SEED), *eval_timing,
                     '--json', str(run_dir / 'eval' / 'policy.json'),
                     '--videos', str(run_dir / 'eval' / 'videos' / 'policy')],
        'baseline': ['evaluate', '--policy', 'expert', '--tasks', args.tasks, '--episodes', str(episodes),
                     '--seed', str(EVAL_SEED), '--image-size', str(args.image_size), *eval_timing,
                     '--json', str(run_dir / 'eval' / 'baseline.json'),
                     '--videos', str(run_dir / 'eval' / 'videos' / 'baseline')],
        'report': ['report', str(run_dir)],
    }


def load_stages(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f'vla demo: {path} is unreadable; running every stage again', file=sys.stderr)
        return {}


def trained_models(stage: dict) -> int | None:
    """How many models a recorded train stage trained: its ``--seeds K``, 1 without; None when
    its command was not recorded."""
    command = stage.get('command')
    if not isinstance(command, str):
        return None
    words = command.split()
    if '--seeds' not in words:
        return 1
    try:
        return int(words[words.index('--seeds') + 1])
    except (IndexError, ValueError):
        return None


def check_seeds(args: argparse.Namespace, run_dir: Path, stages: dict, redo_from: int) -> None:
    """Refuse a ``--seeds K`` this run directory would not honour (raises CommandError): a
    completed train stage that is reused but trained another number of models, or a single
    model in RUN_DIR/checkpoint that `vla evaluate` would pick instead of K new ones."""
    from vla_bringup.commands import CommandError
    if args.seeds < 1:
        raise CommandError(f'--seeds must be >= 1, got {args.seeds}')
    first = min([redo_from, *(i for i, s in enumerate(STAGES) if stages.get(s, {}).get('status') != 'done')])
    if first > STAGES.index('train'):  # the train stage is reused
        before = trained_models(stages['train'])
        if before is not None and before != args.seeds:
            raise CommandError(
                f'the train stage of {run_dir} trained {before} model(s) '
                f'(`{stages["train"]["command"]}`), not --seeds {args.seeds}: rerun with '
                f'--seeds {before} to reuse them, or add --redo train to train {args.seeds}')
        return
    checkpoint = run_dir / 'checkpoint'
    if args.seeds > 1 and ((checkpoint / 'checkpoint').is_dir() or (checkpoint / 'config.json').is_file()):
        raise CommandError(
            f'{checkpoint} holds the single model of an earlier run, which `vla evaluate '
            f'--checkpoint {checkpoint}` would evaluate instead of the {args.seeds} models of '
            f'--seeds {args.seeds}: move it away (or use another --out) and rerun')


def run(args: argparse.Namespace, _rest: list[str],
        invoke: Callable[[list[str]], int] | None = None) -> int:
    from vla_bringup.cli import main as vla_main
    invoke = invoke or vla_main
    run_dir = args.out.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    stages_path = run_dir / 'stages.json'
    stages = load_stages(stages_path)
    redo_from = STAGES.index(args.redo) if args.redo else len(STAGES)
    check_seeds(args, run_dir, stages, redo_from)
    commands = stage_commands(args, run_dir)
    from vla_common.evaluation import machine_info, machine_text
    machine = machine_info()
    print(f'[vla demo] {machine_text(machine)}; simulation: {args.timing}', file=sys.stderr)
    total_start = time.monotonic()
    for index, stage in enumerate(STAGES):
        done = stages.get(stage, {}).get('status') == 'done'
        if done and index < redo_from:
            print(f'[vla demo] {stage}: done in an earlier run ({stages[stage]["seconds"]:.0f} s), '
                  f'reusing its output (--redo {stage} runs it again)', file=sys.stderr)
            continue
        argv = commands[stage]
        print(f'[vla demo] stage {index + 1}/{len(STAGES)} {stage}: vla {" ".join(argv)}', file=sys.stderr)
        start = time.monotonic()
        stages[stage] = {'status': 'running', 'command': 'vla ' + ' '.join(argv)}
        atomic_write_json(stages_path, stages)
        rc = invoke(argv)
        seconds = time.monotonic() - start
        stages[stage] = {'status': 'done' if rc == 0 else 'failed', 'seconds': round(seconds, 1),
                         'command': 'vla ' + ' '.join(argv), 'machine': machine}
        atomic_write_json(stages_path, stages)
        if rc == 0 and stage == 'report':
            invoke(argv)  # once more, so the report's stage table shows its own stage as done
        if rc != 0:
            print(f'vla demo: stage {stage!r} failed (exit {rc}); fix the error above, then rerun '
                  f'`vla demo --out {args.out}{f" --seeds {args.seeds}" if args.seeds > 1 else ""}` '
                  'to resume from this stage', file=sys.stderr)
            return rc
        # a redone stage invalidates everything after it
        redo_from = min(redo_from, index + 1)
    print_summary(run_dir, stages, time.monotonic() - total_start, machine)
    return 0


def print_summary(run_dir: Path, stages: dict, seconds: float, machine: dict | None = None) -> None:
    from vla_common.evaluation import controller_text, machine_text, simulation_text
    lines = ['', f'vla demo finished ({machine_text(machine)}):']
    for stage in STAGES:
        info = stages.get(stage, {})
        lines.append(f'  {stage:<9} {info.get("status", "?"):<7} {info.get("seconds", 0):7.1f} s')
    lines.append(f'  {"total":<9} {"":<7} {sum(s.get("seconds", 0) for s in stages.values()):7.1f} s')
    for name in ('policy', 'baseline'):
        path = run_dir / 'eval' / f'{name}.json'
        if path.is_file():
            result = json.loads(path.read_text())
            overall = result['overall']
            spread = seeds_spread(result)
            pooled = f' pooled over {spread.k} training seeds' if spread else ''
            lines.append(f'  {name:<9} success {overall["successes"]}/{overall["n"]}{pooled} '
                         f'({overall["success_rate"]:.0%}, 95% CI {overall["ci95"][0]:.2f}-{overall["ci95"][1]:.2f}), '
                         f'{overall.get("estops") if overall.get("estops") is not None else "uncounted"} '
                         'emergency stop(s); simulation '
                         f'{simulation_text(result.get("simulation"))}'
                         + (f'; controller {controller_text(result["controller"])}'
                            if result.get('controller') else ''))
            if spread:
                lines.append(f'  {"seeds":<9} {seeds_text(spread)}')
    verdict = baseline_verdict(run_dir)
    if verdict:
        lines.append(f'  verdict   {verdict}')
    lines.append(f'  report    {run_dir / "report" / "index.html"}')
    print('\n'.join(lines))


def seeds_spread(result: dict):
    """The overall :class:`~vla_bringup.comparison_seeds.SeedSpread` of a results JSON of
    several training seeds (``vla evaluate --checkpoint`` of a ``--seeds K`` run), else None."""
    from vla_bringup.comparison_seeds import training_spreads
    try:
        spread = (training_spreads(result) or {}).get('overall')
    except ValueError:
        return None
    return spread if spread is not None and spread.k > 1 else None


def seeds_text(spread) -> str:
    """One line of the spread across training seeds: each model's success, the mean, min/max and
    the Student-t 95% interval of the mean over seeds."""
    low, high = spread.ci95()
    return (f'training seeds {", ".join(map(str, spread.seeds))}: success '
            f'{" / ".join(f"{r:.0%}" for r in spread.rates)}, mean {spread.mean:.0%}, min-max '
            f'{min(spread.rates):.0%}-{max(spread.rates):.0%}, 95% CI of the mean {low:.2f}-{high:.2f} '
            f'(Student t over {spread.k} seeds; the CI above is per episode, pooled)')


def baseline_verdict(run_dir: Path) -> str:
    """The policy against the scripted baseline on the same seeds: the paired difference with its
    interval, the exact McNemar test and the ratio of success rates ('' when either is missing).
    A policy of several training seeds (``--seeds K``): the difference of its mean over seeds,
    Welch's t-test on the per-seed rates, and the ratio of that mean."""
    from vla_bringup.comparison import compare_results
    paths = [run_dir / 'eval' / f'{name}.json' for name in ('baseline', 'policy')]
    if not all(p.is_file() for p in paths):
        return ''
    baseline, policy = (json.loads(p.read_text()) for p in paths)
    try:
        overall = compare_results(baseline, policy)[-1]
    except ValueError as exc:
        return f'no paired comparison ({exc})'
    k = overall.seeds_b.k if overall.seeds_b is not None else 1
    rate = overall.seeds_b.mean if k > 1 else overall.successes_b / overall.n_b
    ratio = rate / (overall.successes_a / overall.n_a) if overall.successes_a else float('nan')
    # the test compare_results chose: exact McNemar when paired on the same seeds, Fisher exact
    # when not, Welch's t-test on per-seed rates when a side has several training seeds
    pairing = f'{"paired on the same seeds" if overall.paired else "unpaired"}, {overall.test_name}'
    n = f'n={overall.n_b}' + (f' episodes of {k} training seeds' if k > 1 else '')
    return (f'policy - baseline {overall.difference:+.2f} (95% CI {overall.ci95[0]:+.2f} to '
            f'{overall.ci95[1]:+.2f}, {n}, {pairing} p={overall.p_value:.3g}): '
            f'{overall.verdict.replace("B ", "policy ").replace("A ", "baseline ")}; the policy '
            f'reaches {ratio:.0%} of the baseline\'s success (target 80%)')
