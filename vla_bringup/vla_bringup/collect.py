"""``vla collect``: scripted-expert demonstrations recorded through the ROS graph.

Starts the simulator, the scripted expert (behind the command gate where the scenario has
one) and the ``teleop_collector`` recorder on a private ROS domain; for every task and seed it
resets the simulator, starts a recording with the task's instruction, waits for the episode
to end (success or the task's time limit) and stops the recording with the success flag.

By default the simulator runs in lock-step with the graph: a tick advances when the gate has
forwarded the expert's command for it and the recorder has gathered it, so collection runs as
fast as this machine allows and records the same episodes on any machine.  The simulator is
paused while a recording starts and pauses itself ``--tail`` s after the episode ends (a pick:
``--pick-tail``, 0 by default), so every recording starts at the episode's first tick and ends
at the same tick.
``--real-time-factor`` runs it against the wall clock instead (the nodes race it).

    vla collect --tasks all --episodes 50 --out data/demos
    vla collect --tasks pick_red,pick_blue --episodes 5 --out /tmp/demos --real-time-factor 3

Episodes already in ``--out`` for a (task, seed) are kept and not recorded again, so an
interrupted collection resumes where it stopped.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from vla_bringup.collect_driver import Collection, Recorded
from vla_bringup.commands import CommandError, task_names
from vla_bringup.scenarios import collection_scenario
from vla_common.launching import NodeGroup, domain_held, isolated_ros_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument('--tasks', default='all',
                        help='"all" (the cube table\'s four tasks), a suite ("tabletop", "workbench") '
                             'or comma-separated task and suite names')
    parser.add_argument('--episodes', type=int, default=10, help='demonstrations per task')
    parser.add_argument('--out', type=Path, default=Path('data/demos'),
                        help='episode directory (default: data/demos)')
    parser.add_argument('--seed', type=int, default=0,
                        help='first seed; task seeds are SEED .. SEED+EPISODES-1 (evaluation uses 1000+)')
    parser.add_argument('--real-time-factor', type=float, default=None,
                        help='run the simulator against the wall clock at this speed (>1: sim time '
                             'on /clock) instead of in lock-step with the nodes (the default)')
    parser.add_argument('--episode-timeout', type=float, default=120.0,
                        help='wall-clock seconds before an episode counts as hung')
    parser.add_argument('--tail', type=float, default=0.5,
                        help='seconds of simulated time recorded after a task other than a pick ends '
                             '(success, or in lock-step also a time-limit end), so a demonstration shows '
                             'the whole motion (the release after a placement), not only the moment '
                             'success is detected (default 0.5)')
    parser.add_argument('--pick-tail', type=float, default=0.0,
                        help='the same after a pick (default 0: a pick ends when the cube is up, as its '
                             'evaluation does; a tail would only show the arm holding still)')
    parser.add_argument('--record-bag', action='store_true',
                        help='also keep the raw topics of each episode in a rosbag2 (MCAP) '
                             'directory beside it, episode_NNNNNN.bag (re-cut them later with '
                             '`vla dataset import --format rosbag`)')
    parser.add_argument('--image-size', type=int, default=None, metavar='PX',
                        help='square camera images the simulator renders and the episodes store '
                             '(default: sim.yaml\'s, 224); the cpu preset sees 64 px, so 128 '
                             'records what it needs in a third of the bytes')
    parser.add_argument('--exec-noise', type=float, default=0.0, metavar='RAD',
                        help='std (rad) of Gaussian noise the scripted expert adds to the arm targets '
                             'it executes, while the recorder keeps its clean command as the action '
                             '(DART-style demonstrations that show the way back to the path; '
                             'default 0: none)')
    parser.add_argument('--action-mode', choices=('joint', 'ee_delta'), default='joint',
                        help='what the scripted expert commands: joint targets (default), or '
                             'end-effector deltas, executed as their joint targets and recorded '
                             'beside them as /actions_ee')
    parser.add_argument('--only-successes', action='store_true',
                        help='discard episodes in which the expert failed (default: keep them, '
                             'with success=false)')


def existing_demos(out: Path) -> set[tuple[str, int]]:
    """(task, seed) of the valid episodes already in ``out``."""
    from vla_collect.episode_io import load_valid_episodes, open_episode
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        valid, _ = load_valid_episodes(out, check_images='none')
    done = set()
    for path in valid:
        with open_episode(path) as ep:
            if 'task' in ep.attrs and 'seed' in ep.attrs:
                done.add((str(ep.attrs['task']), int(ep.attrs['seed'])))
    return done


def plan(tasks: list[str], episodes: int, seed: int, done: set[tuple[str, int]]
         ) -> list[tuple[str, int]]:
    return [(t, s) for t in tasks for s in range(seed, seed + episodes) if (t, s) not in done]


def collect(tasks: list[str], episodes: int, out: Path, seed: int, rtf: float | None,
            episode_timeout: float, only_successes: bool = False, tail: float = 0.5,
            record_bag: bool = False, exec_noise: float = 0.0,
            image_size: int | None = None, pick_tail: float = 0.0,
            action_mode: str = 'joint') -> list[Recorded]:
    """Record the demonstrations missing from ``out``; returns what was recorded now.

    ``rtf`` None: lock-step simulation; a number: real time at that factor.  The tasks of each
    scene are recorded by a node group of their own (the workbench has no wrist camera)."""
    if episodes < 1:
        raise CommandError(f'--episodes must be >= 1, got {episodes}')
    if rtf is not None and rtf <= 0:
        raise CommandError(f'--real-time-factor must be > 0, got {rtf}')
    if tail < 0 or pick_tail < 0:
        raise CommandError(f'--tail and --pick-tail must be >= 0 s, got {tail} and {pick_tail}')
    from vla_sim import ALL_TASKS
    tails = {t: pick_tail if ALL_TASKS[t].kind == 'pick' else tail for t in tasks}
    if image_size is not None and image_size < 8:
        raise CommandError(f'--image-size must be >= 8 pixels, got {image_size}')
    if not 0.0 <= exec_noise <= 1.0:
        raise CommandError(f'--exec-noise must be a std in [0, 1] rad, got {exec_noise}')
    out = out.expanduser().resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f'cannot create the output directory {out}: {exc}') from exc
    if not os.access(out, os.W_OK):
        raise CommandError(f'the output directory {out} is not writable; choose another --out')
    todo = plan(tasks, episodes, seed, existing_demos(out))
    skipped = len(tasks) * episodes - len(todo)
    if skipped:
        print(f'vla collect: {skipped} episode(s) already in {out}; recording the other '
              f'{len(todo)}', file=sys.stderr)
    recorded: list[Recorded] = []
    for scene in dict.fromkeys(ALL_TASKS[t].scene for t, _ in todo):
        part = [(t, s) for t, s in todo if ALL_TASKS[t].scene == scene]
        values = {'task': part[0][0], 'seed': part[0][1], 'real_time_factor': rtf or 1.0,
                  'lockstep': rtf is None, 'record_bag': record_bag, 'exec_noise': exec_noise,
                  'image_size': image_size or '', 'action_mode': action_mode,
                  **({'extra_cameras': ['']} if scene == 'workbench' else {})}
        recorded += _collect_scene(part, values, out, rtf, episode_timeout, only_successes, tails,
                                   exec_noise)
    return recorded


def _collect_scene(todo: list[tuple[str, int]], values: dict, out: Path, rtf: float | None,
                   episode_timeout: float, only_successes: bool, tails: dict[str, float],
                   exec_noise: float) -> list[Recorded]:
    """Record ``todo`` (tasks of one scene) with one collection node group."""
    specs = collection_scenario(values, str(out))
    env = isolated_ros_env()
    from tqdm import tqdm

    from vla_bringup.episodes import SimUnavailable, private_context
    with domain_held(env), NodeGroup(specs, env=env) as group:
        context = private_context(int(env['ROS_DOMAIN_ID']))
        collection = Collection(context, {'exec_noise': exec_noise} if exec_noise else None)
        recorded: list[Recorded] = []
        try:
            try:
                collection.wait_ready(timeout=90.0)
                if rtf is None:
                    collection.wait_flowing(timeout=60.0)
            except SimUnavailable as exc:
                logs = '\n'.join(f'--- {p.spec.name}:\n{p.output(2000)}' for p in group.processes)
                raise CommandError(f'{exc}\n{logs}') from exc
            bar = tqdm(todo, desc='collect', unit='ep', file=sys.stderr)
            record = collection.record if rtf is not None else collection.record_lockstep
            for task, task_seed in bar:
                result = record(task, task_seed, episode_timeout,
                                keep_failure=not only_successes, tail=tails[task])
                recorded.append(result)
                bar.set_postfix_str(f'{task} seed {task_seed}: '
                                    f'{"success" if result.success else "fail"}'
                                    f'{"" if result.path else " (not kept)"}')
                if result.note:
                    bar.write(f'vla collect: {task} seed {task_seed} not kept: {result.note}',
                              file=sys.stderr)
                dead = group.dead()
                if dead:
                    raise CommandError(f'node {dead[0].spec.name} died:\n{dead[0].output()}')
            bar.close()
        finally:
            collection.close()
            context.try_shutdown()
    return recorded


def timing_text(rtf: float | None) -> str:
    return 'lock-step' if rtf is None else f'real time x{rtf:g}'


def summary_text(recorded: list[Recorded], wall: float, out: Path, rtf: float | None = None) -> str:
    kept = [r for r in recorded if r.path]
    steps = sum(r.steps for r in kept)
    dropped = sum(r.dropped for r in kept)
    lines = [f'vla collect: {len(kept)} episode(s) saved to {out} '
             f'({sum(r.success for r in kept)} successful), {steps} steps, '
             f'{dropped} dropped ({dropped / max(1, steps + dropped):.2%}), '
             f'{sum(r.estops for r in recorded)} emergency stop(s)',
             f'simulation: {timing_text(rtf)}'
             + (f', {sum(r.timeouts for r in recorded)} tick(s) stepped on the lock-step timeout'
                if rtf is None else '')]
    if recorded:
        lines.append(f'throughput: {len(recorded) / (wall / 60.0):.2f} episodes per wall minute '
                     f'({wall:.0f} s for {len(recorded)})')
    for task in dict.fromkeys(r.task for r in recorded):
        rs = [r for r in recorded if r.task == task]
        lines.append(f'  {task:<22} {sum(r.success for r in rs)}/{len(rs)} successful')
    return '\n'.join(lines)


def run(args: argparse.Namespace, _rest: list[str]) -> int:
    start = time.monotonic()
    recorded = collect(task_names(args.tasks), args.episodes, args.out, args.seed,
                       args.real_time_factor, args.episode_timeout, args.only_successes, args.tail,
                       args.record_bag, args.exec_noise, args.image_size, args.pick_tail,
                       args.action_mode)
    print(summary_text(recorded, time.monotonic() - start, args.out, args.real_time_factor))
    return 0
