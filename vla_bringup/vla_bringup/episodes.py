"""Run simulated episodes through the ROS graph: reset the simulator to a task and seed,
publish the instruction on ``/voice_command``, and wait for success or the time limit.

With a lock-step simulator an episode whose command source stops answering (the simulator
reports ``silent_ticks`` consecutive ticks stepped on its timeout) ends as a timeout whose note
names the silent topic, so nothing waits for the full wall-clock budget."""
from __future__ import annotations

import json
import time

import numpy as np

import rclpy
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_common.evaluation import Episode
from vla_common.launching import wait_for
from vla_common.messages import ImageConversionError, image_to_rgb, to_seconds
from vla_common.parameters import set_parameters_request
from vla_common.qos import LATCHED


class SimUnavailable(RuntimeError):
    """The simulator did not answer; the message says which call and what to check."""


#: a lock-step episode ends as a timeout after this many consecutive unanswered ticks (1 s of
#: sim time; a controller legitimately holds for its command_settle_time, 0.3 s)
SILENT_TICKS_LIMIT = 30


def silence(status: dict, limit: int = SILENT_TICKS_LIMIT) -> str:
    """Why a lock-step simulator's episode is stuck ('' when it is not): the silent topics."""
    if int(status.get('silent_ticks', 0)) < limit:
        return ''
    return (f'no answer from {", ".join(status.get("silent") or ["?"])} for '
            f'{status["silent_ticks"]} consecutive lock-step ticks (the simulator stepped on its '
            'timeout); is the node that publishes it running?')


class EpisodeRunner:
    """A small rclpy node that drives episodes of ``sim_node`` (named ``sim_node_name``)."""

    def __init__(self, sim_node_name: str = 'sim_node', node_name: str = 'vla_episode_runner',
                 context: rclpy.Context | None = None) -> None:
        self.node = Node(node_name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.status: dict | None = None
        self.status_count = 0  # /sim/task_status messages received (to wait for a fresh one)
        self.estop_reason = ''
        self.estop_count = 0
        self.latency_samples: list[float] = []  # controller inference latency per tick (ms)
        self.controller_state: dict[str, str] | None = None  # latest controller diagnostics
        self.control_rates: list[float] = []
        self.overruns_per_minute: list[float] = []  # controller reports (when it sends them)
        self.sim_state: dict[str, str] | None = None  # latest sim_node diagnostics
        self.capture_every = 0  # keep every n-th camera frame of an episode (0: none)
        self._frames: list[np.ndarray] = []
        self._frame_count = 0
        self.node.create_subscription(String, '/sim/task_status', self._on_status, 10)
        self.node.create_subscription(String, '/emergency_stop', self._on_estop, LATCHED)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)
        self.node.create_subscription(Image, '/camera/image_raw', self._on_image,
                                      qos_profile_sensor_data)
        self.last_command_stamp = 0.0  # header stamp of the newest command sent to the robot
        # lock-step ticks the simulator stepped on its timeout before the first episode (it
        # ticks from start-up, before any controller answers): not part of any episode
        self.timeouts_before_episodes: int | None = None
        self.node.create_subscription(JointTrajectory, '/joint_trajectory_controller/joint_trajectory',
                                      self._on_robot_command, 10)
        self.estop_reset = self.node.create_client(Trigger, '/emergency_stop/reset')
        self.command_pub = self.node.create_publisher(String, '/voice_command', 10)
        self.params = self.node.create_client(SetParameters, f'/{sim_node_name}/set_parameters')
        self.reset_srv = self.node.create_client(Trigger, '/sim/reset')

    def _on_status(self, msg: String) -> None:
        try:
            self.status = json.loads(msg.data)
            self.status_count += 1
        except json.JSONDecodeError:
            self.node.get_logger().warning('malformed /sim/task_status message ignored',
                                           throttle_duration_sec=5.0)

    def _on_robot_command(self, msg: JointTrajectory) -> None:
        self.last_command_stamp = to_seconds(msg.header.stamp)

    def _on_estop(self, msg: String) -> None:
        if msg.data and not self.estop_reason:
            self.estop_count += 1
        self.estop_reason = msg.data

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """Collect the controller's per-tick inference latencies, achieved rate and overruns."""
        for status in msg.status:
            if status.name == 'vla_sim: sim_node':
                self.sim_state = {kv.key: kv.value for kv in status.values}
            if 'controller' not in status.name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            self.controller_state = {'message': status.message, **values}
            try:
                if values.get('latency_samples_ms'):
                    self.latency_samples += [float(x) for x in values['latency_samples_ms'].split(',')]
                if 'achieved_rate_hz' in values:
                    self.control_rates.append(float(values['achieved_rate_hz']))
                if 'overruns_per_minute' in values:
                    self.overruns_per_minute.append(float(values['overruns_per_minute']))
            except ValueError:
                self.node.get_logger().warning(f'unparsable diagnostics from {status.name}',
                                               throttle_duration_sec=10.0)

    def _on_image(self, msg: Image) -> None:
        if not self.capture_every:
            return
        self._frame_count += 1
        if self._frame_count % self.capture_every == 0:
            try:
                self._frames.append(image_to_rgb(msg))
            except ImageConversionError as exc:
                self.node.get_logger().warning(f'rollout frame skipped: {exc}',
                                               throttle_duration_sec=10.0)

    def clear_estop(self, timeout: float = 10.0) -> None:
        """Reset a latched emergency stop before the next episode (the arm was reset home)."""
        if not self.estop_reason or not self.estop_reset.service_is_ready():
            return
        answer = self._call(self.estop_reset, Trigger.Request(), timeout, '/emergency_stop/reset')
        if answer.success:
            wait_for(lambda: not self.estop_reason, timeout, self.spin_once)
        else:
            self.node.get_logger().warning(f'emergency stop not reset: {answer.message}')

    def spin_once(self) -> None:
        self.executor.spin_once(timeout_sec=0.02)

    def wait_for_sim(self, timeout: float = 60.0) -> None:
        """Block until the simulator's services and status topic are up."""
        ok = wait_for(lambda: (self.params.service_is_ready() and self.reset_srv.service_is_ready()
                               and self.status is not None), timeout, self.spin_once)
        if not ok:
            raise SimUnavailable(
                f'the simulator did not come up within {timeout:.0f} s (no /sim/reset service or '
                '/sim/task_status); check the sim_node log for its error')

    def wait_for_controller(self, timeout: float = 120.0) -> None:
        """Block until the policy controller has loaded its checkpoint and listens for commands."""
        def ready() -> bool:
            state = self.controller_state
            if state is not None and state.get('state') == 'error':
                raise SimUnavailable(f'the controller is in its error state: {state["message"]}')
            return state is not None and self.command_pub.get_subscription_count() > 0
        if not wait_for(ready, timeout, self.spin_once):
            raise SimUnavailable(f'the controller did not report ready on /diagnostics within '
                                 f'{timeout:.0f} s; check the vla_controller log')

    def _call(self, client, request, timeout: float, what: str):
        future = client.call_async(request)
        if not wait_for(future.done, timeout, self.spin_once):
            raise SimUnavailable(f'{what} got no answer within {timeout:.0f} s')
        return future.result()

    def set_sim_parameters(self, timeout: float = 20.0, **values) -> None:
        """Set ``sim_node`` parameters (task, seed, paused, pause_after_done)."""
        result = self._call(self.params, set_parameters_request(values), timeout,
                            'setting the simulator parameters')
        refused = [r.reason for r in result.results if not r.successful]
        if refused:
            raise ValueError('; '.join(refused))

    def reset(self, task: str, seed: int, timeout: float = 20.0, **sim_parameters) -> dict:
        """Set the task/seed (and other ``sim_parameters``), call ``/sim/reset``, return the
        first status of the new episode."""
        self.set_sim_parameters(timeout, task=task, seed=int(seed), **sim_parameters)
        answer = self._call(self.reset_srv, Trigger.Request(), timeout, '/sim/reset')
        if not answer.success:
            raise ValueError(answer.message)
        episode = int(answer.message.split(':')[0].split()[-1])
        if not wait_for(lambda: self.status is not None and self.status['episode'] >= episode,
                        timeout, self.spin_once):
            raise SimUnavailable(f'no /sim/task_status for episode {episode} within {timeout:.0f} s')
        return self.status

    def run_episode(self, task: str, seed: int, wall_timeout: float = 120.0) -> Episode:
        """Reset, publish the instruction, wait for the episode to end (success or time limit)."""
        start = time.monotonic()
        lockstep = (self.status or {}).get('mode') == 'lockstep'
        status = self.reset(task, seed, **({'paused': True} if lockstep else {}))
        if lockstep and self.timeouts_before_episodes is None:
            self.timeouts_before_episodes = int(status.get('timeouts', 0))
        self.clear_estop()
        estops_before = self.estop_count
        episode = status['episode']
        self._frames, self._frame_count = [], 0
        self.command_pub.publish(String(data=status['instruction']))
        if lockstep:
            # The first tick of an episode steps with the newest command once the graph has
            # taken in the reset (a command forwarded against the old pose is superseded by the
            # gate's hold before the sim moves), and the instruction reaches the controller at
            # the episode's first tick on every machine.
            first = float(status['stamp'])
            if wait_for(lambda: self.last_command_stamp >= first - 1e-6, 0.3, self.spin_once):
                wait_for(lambda: False, 0.05, self.spin_once)
            self.set_sim_parameters(paused=False)
        ended = wait_for(lambda: self.status['episode'] == episode and (
            self.status['done'] or silence(self.status)), wall_timeout, self.spin_once)
        final = self.status
        note = silence(final) if ended and not final['done'] else (
            '' if ended else f'no end of episode within {wall_timeout:g} s (wall)')
        if note and self.estop_reason:
            note += f' (emergency stop latched: {self.estop_reason})'
        return Episode(task=task, seed=seed, success=bool(final['success']),
                       reward=float(final['reward']), length=int(final['step']),
                       sim_time=float(final['sim_time']),
                       wall_time=time.monotonic() - start, timed_out=bool(note),
                       estops=self.estop_count - estops_before, note=note,
                       frames=self._frames)

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def private_context(domain_id: int) -> rclpy.Context:
    """An rclpy context of its own on ``domain_id`` (leaves any global rclpy state alone)."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    return context
