"""The ROS driver behind ``vla collect``: one scripted-expert demonstration at a time.

:class:`Collection` drives the simulator (through :class:`vla_bringup.episodes.EpisodeRunner`)
and the ``teleop_collector`` recorder's services (start, stop, discard, its parameters) on a
private ROS context: it resets the simulator to a task and seed, starts the recording with the
task's instruction, waits for the episode to end and stops the recording with the success flag,
or discards it with the reason (:attr:`Recorded.note`).  ``vla_bringup.collect`` plans the
episodes, starts the nodes and reports.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from vla_bringup.commands import CommandError
from vla_bringup.scenarios import RECORDER_TICK_TOPIC, ROBOT_COMMAND_TOPIC
from vla_common.launching import wait_for
from vla_common.messages import to_seconds

COLLECTOR = 'teleop_collector'
LATE_START_TICKS = 15  # an episode whose recording starts later than this (0.5 s) is not kept


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
