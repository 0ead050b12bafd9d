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
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vla_bringup.commands import CommandError, task_names
from vla_bringup.scenarios import (RECORDER_TICK_TOPIC, ROBOT_COMMAND_TOPIC,
                                   collection_scenario)
from vla_common.launching import NodeGroup, domain_held, isolated_ros_env, wait_for
from vla_common.messages import to_seconds

COLLECTOR = 'teleop_collector'
LATE_START_TICKS = 15  # an episode whose recording starts later than this (0.5 s) is not kept


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument('--tasks', default='all', help='comma-separated task names or "all"')
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
    parser.add_argument('--only-successes', action='store_true',
                        help='discard episodes in which the expert failed (default: keep them, '
                             'with success=false)')


@dataclass
class Recorded:
    task: str
    seed: int
    success: bool
    steps: int
    dropped: int
    path: str | None
    wall_time: float
    estops: int = 0  # emergency stops latched during the episode
    note: str = ''  # why the episode was not kept
    timeouts: int = 0  # lock-step ticks the simulator stepped on its timeout during the episode


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


class Collection:
    """Drives the simulator (through :class:`EpisodeRunner`) and the recorder's services."""

    def __init__(self, context, metadata: dict | None = None) -> None:
        from rcl_interfaces.srv import SetParameters
        from std_msgs.msg import Header
        from std_srvs.srv import SetBool, Trigger
        from trajectory_msgs.msg import JointTrajectory

        from vla_bringup.episodes import EpisodeRunner
        self.runner = EpisodeRunner(node_name='vla_collect_driver', context=context)
        self.metadata = dict(metadata or {})  # more attributes of every episode
        node = self.runner.node
        # the driver keeps no camera frames (the recorder does): drop the runner's camera
        # subscription, one 150 kB delivery and copy less per simulated tick
        for subscription in list(node.subscriptions):
            if subscription.topic_name == '/camera/image_raw':
                node.destroy_subscription(subscription)
        self.start_srv = node.create_client(Trigger, f'/{COLLECTOR}/start')
        self.stop_srv = node.create_client(SetBool, f'/{COLLECTOR}/stop')
        self.discard_srv = node.create_client(Trigger, f'/{COLLECTOR}/discard')
        self.params_srv = node.create_client(SetParameters, f'/{COLLECTOR}/set_parameters')
        self.last_command = 0.0  # monotonic time of the last command that reached the robot
        self.recorder_tick = 0.0  # stamp of the recorder's last lock-step tick acknowledgement
        node.create_subscription(JointTrajectory, ROBOT_COMMAND_TOPIC, self._on_command, 10)
        node.create_subscription(Header, RECORDER_TICK_TOPIC, self._on_recorder_tick, 10)

    def _on_command(self, _msg) -> None:
        self.last_command = time.monotonic()

    def _on_recorder_tick(self, msg) -> None:
        self.recorder_tick = to_seconds(msg.stamp)

    def wait_ready(self, timeout: float) -> None:
        from vla_bringup.episodes import SimUnavailable
        self.runner.wait_for_sim(timeout=timeout)
        clients = (self.start_srv, self.stop_srv, self.discard_srv, self.params_srv)
        if not wait_for(lambda: all(c.service_is_ready() for c in clients), timeout,
                        self.runner.spin_once):
            raise SimUnavailable(f'the recorder ({COLLECTOR}) did not come up within {timeout:.0f} s')

    def wait_flowing(self, timeout: float) -> None:
        """Lock-step: wait until a tick has been answered end to end (expert -> gate -> sim, and
        the recorder's acknowledgement), so no answer of a paused first tick is lost to nodes
        that are still discovering each other."""
        from vla_bringup.episodes import SimUnavailable
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # a node that came up late (the simulator's first render) can have tripped the
            # joint-state watchdog: clear that stop before the first demonstration
            self.runner.clear_estop()
            seen = self.recorder_tick
            if wait_for(lambda: self.recorder_tick > seen and not self.runner.estop_reason, 2.0,
                        self.runner.spin_once):
                return
        silent = (self.runner.status or {}).get('silent') or [RECORDER_TICK_TOPIC]
        raise SimUnavailable(f'no lock-step tick was answered within {timeout:.0f} s: nothing '
                             f'from {", ".join(silent)}'
                             + (f' (emergency stop: {self.runner.estop_reason})'
                                if self.runner.estop_reason else ''))

    def _call(self, client, request, what: str, timeout: float = 20.0):
        return self.runner._call(client, request, timeout, what)

    def _set_next_episode(self, instruction: str, task: str, seed: int) -> None:
        from vla_common.parameters import set_parameters_request
        result = self._call(self.params_srv, set_parameters_request({
            'language_command': instruction,
            'episode_metadata': json.dumps({'task': task, 'seed': seed,
                                            'source': 'scripted_expert', **self.metadata})}),
            'setting the recorder language command')
        refused = [r.reason for r in result.results if not r.successful]
        if refused:
            raise CommandError('the recorder refused the episode settings: ' + '; '.join(refused))

    def _late(self, episode: int) -> bool:
        """Whether the episode has gone on too far to be recorded from its start, judged on a
        status published after this call (the one at hand may be several ticks old)."""
        seen = self.runner.status_count
        wait_for(lambda: self.runner.status_count >= seen + 2, 5.0, self.runner.spin_once)
        status = self.runner.status
        return status['episode'] == episode and (bool(status['done'])
                                                 or int(status['step']) > LATE_START_TICKS)

    def record_lockstep(self, task: str, seed: int, wall_timeout: float, keep_failure: bool,
                        tail: float = 0.5) -> Recorded:
        """One demonstration with a lock-step simulator: pause, reset, wait until the recorder
        has the episode's first tick, start recording, resume; the simulator pauses itself
        ``tail`` s after the episode ends, and the recording stops there."""
        from std_srvs.srv import Trigger
        from vla_bringup.episodes import silence
        start = time.monotonic()
        self.runner.clear_estop()
        estops_before = self.runner.estop_count
        for _attempt in range(3):
            status = self.runner.reset(task, seed, paused=True, pause_after_done=float(tail))
            episode, first_tick = status['episode'], float(status['stamp'])
            # the recorder has the first tick and its answer; a paused tick is not timed out, so
            # an answer lost on the way (a stop being cleared) is asked for again by a new reset
            if wait_for(lambda: self.recorder_tick >= first_tick - 1e-6, 5.0, self.runner.spin_once):
                break
            self.runner.clear_estop()
        else:
            raise CommandError(
                f'no lock-step tick acknowledgement on {RECORDER_TICK_TOPIC} for the first tick of '
                f'{task} seed {seed} in 3 tries: the recorder ({COLLECTOR}) or the command source '
                f'({ROBOT_COMMAND_TOPIC}: scripted expert, gate) is not answering'
                + (f' (emergency stop: {self.runner.estop_reason})' if self.runner.estop_reason else ''))
        timeouts_before = int(status.get('timeouts', 0))
        self._set_next_episode(status['instruction'], task, seed)
        answer = self._call(self.start_srv, Trigger.Request(), 'starting the recording')
        if not answer.success:
            raise CommandError(f'the recorder did not start: {answer.message}')
        self.runner.set_sim_parameters(paused=False)

        def over() -> bool:
            now = self.runner.status
            return now['episode'] == episode and ((now['done'] and now['paused']) or bool(silence(now)))
        ended = wait_for(over, wall_timeout, self.runner.spin_once)
        final = self.runner.status
        estops = self.runner.estop_count - estops_before
        note = ('hung: no end of episode within the timeout' if not ended else
                silence(final) if not final['done'] else
                f'emergency stop: {self.runner.estop_reason or "latched"}' if estops else
                'failed (--only-successes)' if not final['success'] and not keep_failure else '')
        return self._finish(task, seed, bool(final['success']) and ended, note, start, estops,
                            int(final.get('timeouts', 0)) - timeouts_before)

    def _finish(self, task: str, seed: int, success: bool, note: str, start: float, estops: int,
                timeouts: int = 0) -> Recorded:
        """Stop the recording: saved with ``success``, or discarded when ``note`` says why."""
        from std_srvs.srv import SetBool, Trigger
        if note:  # an e-stopped demonstration shows the arm frozen, not the task: drop it
            self._call(self.discard_srv, Trigger.Request(), 'discarding the recording')
            return Recorded(task, seed, success, 0, 0, None, time.monotonic() - start, estops, note,
                            timeouts)
        answer = self._call(self.stop_srv, SetBool.Request(data=success), 'stopping the recording')
        if not answer.success:
            raise CommandError(f'the recorder could not save {task} seed {seed}: {answer.message}')
        summary = json.loads(answer.message)
        return Recorded(task, seed, success, int(summary['steps']), int(summary['dropped']),
                        summary['path'], time.monotonic() - start, estops, '', timeouts)

    def record(self, task: str, seed: int, wall_timeout: float, keep_failure: bool,
               tail: float = 0.5) -> Recorded:
        """One demonstration with a real-time simulator (the recording starts once the expert's
        commands flow, and is not kept when that was late)."""
        from std_srvs.srv import Trigger
        start = time.monotonic()
        self.runner.clear_estop()
        estops_before = self.runner.estop_count
        for _attempt in range(3):
            status = self.runner.reset(task, seed)
            episode = status['episode']
            # record only once the expert's commands reach the robot (they start after a reset)
            reset_at = time.monotonic()
            if not wait_for(lambda: self.last_command > reset_at, 20.0, self.runner.spin_once):
                raise CommandError(f'no command reached {ROBOT_COMMAND_TOPIC} within 20 s after the '
                                   f'reset to {task} seed {seed}; is the scripted expert or the gate '
                                   'stopped (emergency stop)?')
            if not self._late(episode):
                break
            # the commands came late (nodes still discovering each other at start-up): the
            # simulator ran on without them, so start the episode over now that they flow
        self._set_next_episode(status['instruction'], task, seed)
        answer = self._call(self.start_srv, Trigger.Request(), 'starting the recording')
        if not answer.success:
            raise CommandError(f'the recorder did not start: {answer.message}')
        if self._late(episode):  # the start of the demonstration is missing: do not keep half of it
            self._call(self.discard_srv, Trigger.Request(), 'discarding the recording')
            return Recorded(task, seed, False, 0, 0, None, time.monotonic() - start, 0,
                            f'the recording started late (at step {self.runner.status["step"]} '
                            'of the episode)')
        ended = wait_for(lambda: self.runner.status['episode'] == episode
                         and self.runner.status['done'], wall_timeout, self.runner.spin_once)
        final = self.runner.status
        success = bool(final['success']) and ended
        if success and tail > 0:  # the expert goes on (release, retreat): keep recording it
            done_at = float(final['sim_time'])
            wait_for(lambda: self.runner.status['episode'] == episode
                     and float(self.runner.status['sim_time']) >= done_at + tail,
                     wall_timeout, self.runner.spin_once)
        estops = self.runner.estop_count - estops_before
        note = ('hung: no end of episode within the timeout' if not ended else
                f'emergency stop: {self.runner.estop_reason or "latched"}' if estops else
                'failed (--only-successes)' if not success and not keep_failure else '')
        return self._finish(task, seed, success, note, start, estops)

    def close(self) -> None:
        self.runner.close()


def collect(tasks: list[str], episodes: int, out: Path, seed: int, rtf: float | None,
            episode_timeout: float, only_successes: bool = False, tail: float = 0.5,
            record_bag: bool = False, exec_noise: float = 0.0,
            image_size: int | None = None, pick_tail: float = 0.0) -> list[Recorded]:
    """Record the demonstrations missing from ``out``; returns what was recorded now.

    ``rtf`` None: lock-step simulation; a number: real time at that factor."""
    if episodes < 1:
        raise CommandError(f'--episodes must be >= 1, got {episodes}')
    if rtf is not None and rtf <= 0:
        raise CommandError(f'--real-time-factor must be > 0, got {rtf}')
    if tail < 0 or pick_tail < 0:
        raise CommandError(f'--tail and --pick-tail must be >= 0 s, got {tail} and {pick_tail}')
    from vla_sim import TASKS
    tails = {t: pick_tail if TASKS[t].kind == 'pick' else tail for t in tasks}
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
    if not todo:
        return []
    values = {'task': todo[0][0], 'seed': todo[0][1], 'real_time_factor': rtf or 1.0,
              'lockstep': rtf is None, 'record_bag': record_bag, 'exec_noise': exec_noise,
              'image_size': image_size or ''}
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
                       args.record_bag, args.exec_noise, args.image_size, args.pick_tail)
    print(summary_text(recorded, time.monotonic() - start, args.out, args.real_time_factor))
    return 0
