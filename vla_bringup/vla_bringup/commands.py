"""The subcommands of ``vla`` (each one registers its own arguments)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vla_bringup.scenarios import ARGUMENTS, build_scenario
from vla_common.launching import NodeGroup


class CommandError(RuntimeError):
    """A failure the user can act on; the message says what to do."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, list[str]], int]
    passthrough: bool = False  # hand unknown arguments to another program's parser

    def register(self, sub) -> None:
        text = self.help.replace('%', '%%')  # argparse formats help strings with %
        parser = sub.add_parser(self.name, help=text, description=text,
                                add_help=not self.passthrough)
        self.add_arguments(parser)
        parser.set_defaults(func=self.run, passthrough=self.passthrough)


def task_names(spec: str) -> list[str]:
    """``--tasks``: ``all`` (the cube table's four tasks), a suite (``tabletop``, ``workbench``)
    or comma-separated task and suite names (``vla_sim.resolve_tasks``)."""
    from vla_sim.tasks import resolve_tasks
    try:
        return resolve_tasks(spec)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


# -- scenarios that run until Ctrl-C ---------------------------------------------------------
def run_scenario(name: str, values: dict, duration: float | None) -> int:
    """Start the scenario's nodes in the caller's ROS environment and watch them."""
    group = NodeGroup(build_scenario(name, values), env=dict(os.environ))
    print(f'vla {name}: starting {", ".join(p.spec.name for p in group.processes)} '
          f'(logs in {group.log_dir}); Ctrl-C stops', file=sys.stderr)
    stop = {'now': False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    group.start()
    start = time.monotonic()
    try:
        while not stop['now'] and (duration is None or time.monotonic() - start < duration):
            dead = group.dead()
            if dead:
                for proc in dead:
                    print(f'--- {proc.spec.name} exited with {proc.returncode}:\n{proc.output()}',
                          file=sys.stderr)
                raise CommandError(f'node(s) {[p.spec.name for p in dead]} stopped; see their '
                                   'output above')
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()
    return 0


def scenario_arguments(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        for arg in ARGUMENTS[name]:
            parser.add_argument(f'--{arg.name.replace("_", "-")}', default=arg.default,
                                help=f'{arg.description} (default: {arg.default})')
        parser.add_argument('--duration', type=float, default=None,
                            help='stop after this many seconds (default: run until Ctrl-C)')
    return add


def scenario_command(name: str, help_text: str) -> Command:
    def run(args: argparse.Namespace, _rest: list[str]) -> int:
        values = {a.name: getattr(args, a.name) for a in ARGUMENTS[name]}
        return run_scenario(name, values, args.duration)
    return Command(name, help_text, scenario_arguments(name), run)


# -- evaluation -------------------------------------------------------------------------------
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--policy', choices=['expert'],
                        help='evaluate a built-in command source (the scripted baseline)')
    source.add_argument('--checkpoint',
                        help='evaluate a trained policy checkpoint directory (or its run directory); '
                             'the OUT directory of `vla train --seeds K` (with seeds.json) evaluates '
                             'each of the K models on the same seeds and reports the mean success '
                             'and its spread across training seeds')
    parser.add_argument('--tasks', default='all', help='comma-separated task names or "all"')
    parser.add_argument('--episodes', type=int, default=10, help='episodes per task')
    parser.add_argument('--seed', type=int, default=1000,
                        help='first evaluation seed (keep clear of the demonstration seeds)')
    parser.add_argument('--real-time-factor', type=float, default=None,
                        help='run the simulator against the wall clock at this speed (1.0: the '
                             'controller meets wall-clock deadlines as on a real robot, for latency '
                             'measurements) instead of in lock-step with the nodes (the default: as '
                             'fast as the nodes answer, the same episodes on any machine)')
    parser.add_argument('--json', type=Path, help='write the results JSON here')
    parser.add_argument('--episode-timeout', type=float, default=120.0,
                        help='wall-clock seconds before an episode counts as hung')
    parser.add_argument('--videos', type=Path,
                        help='write a GIF of the first success and failure of each task here')
    parser.add_argument('--image-size', type=int, default=None, metavar='PX',
                        help='square images the simulator renders (default: the size the checkpoint '
                             'was trained on; sim.yaml\'s 224 for --policy expert)')
    seq = parser.add_argument_group(
        'sequential evaluation (vla_bringup.comparison.SequentialMcNemar)',
        'Evaluate on the seeds of an earlier evaluation A, seed by seed across the tasks, and stop '
        'as soon as a two-sided sequential probability ratio test on the discordant pairs decides '
        '(B better, A better, no difference) or at --episodes per task (underpowered). The rule '
        'is fixed and printed before the first episode and stored in the results JSON.')
    seq.add_argument('--until-decided', action='store_true',
                     help='stop when the sequential test decides (needs --against)')
    seq.add_argument('--against', type=Path, metavar='A.json',
                     help='the results JSON of the evaluation to compare with (A)')
    seq.add_argument('--odds', type=float, default=3.0,
                     help='odds ratio among discordant pairs the test is powered to detect (default 3)')
    seq.add_argument('--alpha', type=float, default=0.05, help='type-I error, two-sided (default 0.05)')
    seq.add_argument('--power', type=float, default=0.8, help='power at --odds (default 0.8)')


def sequential_plan(args: argparse.Namespace, tasks: list[str]):
    """``--until-decided --against A.json``: the plan, fixed before the first episode."""
    if args.against is not None and not args.until_decided:
        raise CommandError('--against is for --until-decided (to compare two finished '
                           'evaluations use `vla compare A.json B.json`)')
    if not args.until_decided:
        return None
    if args.against is None:
        raise CommandError('--until-decided needs --against A.json: the evaluation to compare with')
    from vla_bringup.comparison import SequentialPlan
    try:
        reference = json.loads(args.against.read_text())
        return SequentialPlan.from_results(reference, tasks, args.seed, args.episodes,
                                           against=str(args.against), odds=args.odds,
                                           alpha=args.alpha, power=args.power)
    except OSError as exc:
        raise CommandError(f'cannot read --against {args.against}: {exc}') from exc
    except json.JSONDecodeError as exc:
        raise CommandError(f'--against {args.against} is not a results JSON: {exc}') from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def training_seed_checkpoints(checkpoint: str | None) -> dict[int, Path] | None:
    """``{training seed: checkpoint}`` of a ``vla train --seeds K`` OUT directory (its
    seeds.json), None for anything else (a checkpoint, a run directory)."""
    if checkpoint is None:
        return None
    root = Path(checkpoint)
    index = root / 'seeds.json'
    if not index.is_file() or (root / 'config.json').is_file() or (root / 'checkpoint').is_dir():
        return None
    try:
        runs = json.loads(index.read_text())['runs']
        found = {int(r['seed']): root / str(r['checkpoint']) for r in runs}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CommandError(f'{index} is not the seeds.json of `vla train --seeds K` ({exc}): '
                           'expected {"runs": [{"seed": S, "checkpoint": "seed_S/checkpoint"}, ...]}') from exc
    missing = [str(p) for p in found.values() if not (p / 'config.json').is_file()]
    if not found or missing:
        raise CommandError(f'{index} lists checkpoints that do not exist: {", ".join(missing) or "none"}; '
                           'train them again or evaluate the ones there with --checkpoint DIR')
    return found


def evaluate_training_seeds(args: argparse.Namespace, tasks: list[str],
                            checkpoints: dict[int, Path]) -> dict:
    """Evaluate each model of a ``--seeds K`` run on the same seeds (each results JSON written
    beside ``--json`` as ``NAME.seed_S.json``) and combine them
    (:func:`vla_bringup.comparison_seeds.combine_training_seeds`)."""
    from vla_bringup.comparison_seeds import combine_training_seeds
    from vla_bringup.evaluation import evaluate
    from vla_common.evaluation import format_table, write_results
    per_seed = []
    for i, (seed, checkpoint) in enumerate(sorted(checkpoints.items())):
        print(f'training seed {seed} ({i + 1} of {len(checkpoints)}): {checkpoint}', file=sys.stderr)
        summary = evaluate(policy=None, checkpoint=str(checkpoint), tasks=tasks,
                           episodes=args.episodes, seed=args.seed, rtf=args.real_time_factor,
                           episode_timeout=args.episode_timeout,
                           video_dir=args.videos / f'seed_{seed}' if args.videos else None,
                           video_root=args.json.parent.parent if args.json else None,
                           image_size=args.image_size)
        print(format_table(summary))
        if args.json:
            path = args.json.with_name(f'{args.json.stem}.seed_{seed}{args.json.suffix}')
            write_results(path, summary)
            print(f'results of training seed {seed} written to {path}', file=sys.stderr)
        per_seed.append((seed, summary))
    try:
        return combine_training_seeds(per_seed, policy=f'checkpoint:{args.checkpoint} '
                                      f'({len(per_seed)} training seeds)',
                                      checkpoints={s: str(c) for s, c in checkpoints.items()})
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def run_evaluate(args: argparse.Namespace, _rest: list[str]) -> int:
    from vla_bringup.evaluation import evaluate
    from vla_common.evaluation import format_table, write_results
    tasks = task_names(args.tasks)
    seeds = training_seed_checkpoints(args.checkpoint)
    if seeds is not None:
        if args.until_decided:
            raise CommandError(f'--until-decided evaluates one checkpoint; {args.checkpoint} holds '
                               f'{len(seeds)} training seeds: evaluate them with `vla evaluate '
                               f'--checkpoint {args.checkpoint}` and compare with `vla compare`')
        from vla_bringup.comparison_seeds import format_seed_spread
        summary = evaluate_training_seeds(args, tasks, seeds)
        print(f'all {len(seeds)} training seeds pooled (per-episode Wilson intervals):')
        print(format_table(summary))
        print(format_seed_spread(summary))
        if args.json:
            write_results(args.json, summary)
            print(f'results written to {args.json}', file=sys.stderr)
        return 0
    plan = sequential_plan(args, tasks)
    if plan is not None:
        print(f'sequential rule, fixed before the first episode: {plan.test.rule()}; '
              f'{len(plan.order)} pairs of {args.against} at most', file=sys.stderr)
    summary = evaluate(policy=args.policy, checkpoint=args.checkpoint, tasks=tasks,
                       episodes=args.episodes, seed=args.seed, rtf=args.real_time_factor,
                       episode_timeout=args.episode_timeout, video_dir=args.videos,
                       video_root=args.json.parent.parent if args.json else None,
                       sequential=plan, image_size=args.image_size)
    print(format_table(summary))
    if plan is not None:
        s = summary['sequential']
        print(f'sequential decision against {args.against}: {s["decision"] or "none"} after '
              f'{s["pairs"]} of {s["max_pairs"]} pairs (A only {s["a_only"]}, B only '
              f'{s["b_only"]}); {s["saved_episodes"]} episodes saved')
    if args.json:
        write_results(args.json, summary)
        print(f'results written to {args.json}', file=sys.stderr)
    return 0


def module_command(name: str, module: str, help_text: str) -> Command:
    """A command implemented in ``module``, imported only when it runs (keeps ``vla --help`` fast).

    The module provides ``add_arguments(parser)`` and ``run(args, rest) -> int``.
    """
    import importlib

    def add(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(module).add_arguments(parser)

    def run(args: argparse.Namespace, rest: list[str]) -> int:
        return importlib.import_module(module).run(args, rest)
    return Command(name, help_text, add, run)


def program_command(name: str, module: str, help_text: str) -> Command:
    """A command that is another program's ``main(argv)`` (e.g. ``ros2 run vla_policy train``)."""
    import importlib

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument('-h', '--help', action='store_true', dest='program_help',
                            help=f'show the help of {module}')

    def run(args: argparse.Namespace, rest: list[str]) -> int:
        argv = rest + (['--help'] if args.program_help else [])
        try:
            return int(importlib.import_module(module).main(argv) or 0)
        except SystemExit as exc:  # argparse exits on --help and usage errors
            return exc.code if isinstance(exc.code, int) else 1
    return Command(name, help_text, add, run, passthrough=True)


COMMANDS: list[Command] = [
    scenario_command('sim', 'the MuJoCo simulated arm with the scripted expert (= sim.launch.py)'),
    scenario_command('teleop', 'joystick teleoperation + the demonstration recorder, simulated or '
                     'real robot (= teleop.launch.py)'),
    scenario_command('deploy', 'a trained checkpoint controlling the robot behind the command gate '
                     'and safety monitor (= deploy.launch.py)'),
    module_command('collect', 'vla_bringup.collect', 'scripted-expert demonstrations in simulation, '
                   'recorded through ROS to HDF5 episodes'),
    program_command('dataset', 'vla_collect.dataset_cli', 'demonstration dataset tools: '
                    'info, validate, stats, view, split, recover'),
    Command('evaluate', 'closed-loop evaluation through ROS, per-task success with 95% intervals',
            add_evaluate_arguments, run_evaluate),
    program_command('train', 'vla_policy.train', 'behavioural cloning of a VLAPolicy on HDF5 episodes '
                    '(= ros2 run vla_policy train)'),
    module_command('demo', 'vla_bringup.demo', 'the end-to-end demo in simulation: collect, train, '
                   'deploy, evaluate against the scripted baseline, report'),
    module_command('compare', 'vla_bringup.compare', 'is B better than A? paired comparison of '
                   'results JSON files (exact McNemar on the same seeds), with a verdict per task'),
    module_command('report', 'vla_bringup.report',
                   'the evaluation report of a run directory: RUN_DIR/report/index.html + report.md'),
]
