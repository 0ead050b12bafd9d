"""``ros2 run vla_control vla_controller``: a VLA checkpoint as a real-time joint controller.

Subscribes ``/camera/image_raw`` (sensor-data QoS; plus ``/camera/<name>/image_raw`` for each
extra camera the checkpoint was trained with, e.g. ``wrist``), ``/joint_states``,
``/voice_command`` and the latched ``/emergency_stop``; every ``1 / control_rate`` s it gives the
policy the newest frames and publishes a ``JointTrajectory`` on ``/vla/command`` (the command
gate forwards it to the robot): the action at ``time_from_start`` = one tick, then, with
``plan_points`` N, up to N upcoming actions of the plan a tick apart.  The policy runs the model
only when its action queue is empty (one tick in ``n_action_steps``); the other ticks pop the queue.
A checkpoint of end-effector deltas (``vla train --action-space ee_delta``) has each action turned
into joint targets by IK on ``kinematics_model`` first (:mod:`vla_control.ee_actions`).

It holds and says why in the log and ``/diagnostics`` when there is no command, the image or
joint state is older than ``max_observation_age``, the policy fails or outputs something unsafe,
during an emergency stop, and for ``command_settle_time`` after the command changed.  A hold
resets the policy (actions queued before a stall are never run after it) and publishes one hold
when the controller was acting: at the measured position, or at the last commanded target when
the joint state is stale (see :class:`vla_control.runtime.ControlLoop`).  Ticks run in their
own thread (:mod:`vla_control.tick_worker`, ``num_threads`` torch threads); a timer tick that
finds the previous one still running is an overrun (``overruns``, ``overruns_per_minute`` in
``/diagnostics``), not queued.  On SIGINT (Ctrl-C, ``ros2 launch``) and SIGTERM it publishes the
hold before it exits.

It is a managed lifecycle node: ``configure`` loads and checks the checkpoint, ``activate``
starts commanding, ``deactivate`` holds, ``cleanup`` drops the checkpoint; with ``autostart``
(the default, what ``vla deploy``/``evaluate``/``demo`` and ``deploy.launch.py`` rely on) it
configures and activates itself at start-up.  Until active it holds and says why.  A checkpoint
that does not load or does not fit the robot leaves the node running in an ``error`` state that
holds.  With ``lockstep`` (a lock-step simulator) there is no timer: each simulated tick is
answered once its observations are in (:mod:`vla_control.lockstep`).  With ``record_dir`` set
every observation and predicted action goes to an HDF5 episode per command
(:mod:`vla_control.rollouts`).  What does not need ROS lives in those modules and
:mod:`~vla_control.runtime`, :mod:`~vla_control.inputs`, :mod:`~vla_control.loading`,
:mod:`~vla_control.status`, :mod:`~vla_control.parameters`; this node connects them to ROS.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from vla_common.diagnostics import DiagnosticsPublisher
from vla_common.logs import emit_log
from vla_common.messages import known_velocities, parse_joint_state, to_seconds, trajectory_msg
from vla_common.qos import LATCHED
from vla_control.inputs import InputCache, decode_image
from vla_control.loading import PolicySettings, load_policy
from vla_control.lockstep import LockstepTicks
from vla_control.parameters import PARAMETERS, per_joint, refused_change
from vla_control.rollouts import RolloutRecorder
from vla_control.runtime import ControlLoop, check_image_size
from vla_control.smoothing import per_joint_limit
from vla_control.status import TickStats, status_values
from vla_control.tick_worker import TickWorker
from vla_safety.rules import FaultLog, SafetyLimits


class VLAController(LifecycleNode):
    def __init__(self) -> None:
        super().__init__('vla_controller')
        for name, default, text in PARAMETERS:
            if default is None:  # the robot description's (robot.yaml); joint_names comes first
                names = None if name == 'joint_names' else self.get_parameter('joint_names').value
                default = per_joint(name, names)
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        p = self.get_parameter
        self.limits = SafetyLimits.from_values(p('joint_names').value, p('joint_lower').value,
                                               p('joint_upper').value, p('max_velocity').value)
        self.period = 1.0 / float(p('control_rate').value)
        self.max_acceleration = per_joint_limit('max_acceleration', p('max_acceleration').value,
                                                self.limits.n)
        self.max_age = float(p('max_observation_age').value)
        self.settle = float(p('command_settle_time').value)
        self.lockstep = bool(p('lockstep').value)
        self.stats = TickStats(self.period)
        self.faults = FaultLog()
        self.lock = threading.Lock()  # the lock-step ticks
        # latest inputs (written by subscription callbacks, read by the tick)
        self.cache = InputCache(str(p('command').value), self._now())

        self.state = 'unconfigured'  # lifecycle state, or 'error' (no usable checkpoint)
        self.error = ''
        self.num_threads = max(1, int(p('num_threads').value))
        self.policy = None
        self._use_policy(None)
        self.encode_every_tick = bool(p('encode_every_tick').value)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.inputs = inputs = MutuallyExclusiveCallbackGroup()
        self.camera_subs: list = []  # the extra cameras' subscriptions (from the checkpoint)
        self.control_group = MutuallyExclusiveCallbackGroup()
        self.command_pub = self.create_publisher(JointTrajectory, '/vla/command', 10)
        self.diagnostics = DiagnosticsPublisher(self, 'vla_control: vla_controller', 'vla_controller')
        self.create_subscription(Image, '/camera/image_raw', self._on_image,
                                 qos_profile_sensor_data, callback_group=inputs)
        self.create_subscription(JointState, '/joint_states', self._on_joint_state,
                                 qos_profile_sensor_data, callback_group=inputs)
        self.create_subscription(String, '/voice_command', self._on_command, 10,
                                 callback_group=inputs)
        self.create_subscription(String, '/emergency_stop', self._on_estop, LATCHED,
                                 callback_group=inputs)
        if not self.lockstep:  # in lock-step the observations of each tick drive the loop
            self.create_timer(self.period, self._on_timer, callback_group=self.control_group)
        # diagnostics on the wall clock: a paused or lock-step simulator's clock may stand still
        self.create_timer(1.0, self._publish_diagnostics, callback_group=inputs,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        # ticks (inference) in their own thread: the executor only takes messages and signals
        self.worker = TickWorker(self._tick, lambda exc: self._fault(
            'tick error', f'control tick failed: {exc}'), self._set_threads,
            'vla_controller_inference')

    # -- lifecycle ------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and check the checkpoint; a failure leaves the node up, holding, in ``error``."""
        loaded = self._load_policy()  # (policy, end-effector converter or None)
        if loaded is None:
            return TransitionCallbackReturn.FAILURE
        with self.lock:
            self._use_policy(*loaded)
        self.camera_subs = [self.create_subscription(
            Image, f'/camera/{camera}/image_raw', lambda msg, c=camera: self._on_image(msg, c),
            qos_profile_sensor_data, callback_group=self.inputs) for camera in self.cameras]
        self.state = 'inactive'
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.state = 'active'  # the next tick acts (after settling when a command is pending)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.state = 'inactive'  # the next tick holds
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for sub in self.camera_subs:
            self.destroy_subscription(sub)
        self.camera_subs = []
        self._close_recording()
        self.cache.drop_extra_images()
        with self.lock:
            policy = self.policy
            self._use_policy(None)
        if policy is not None and hasattr(policy, 'close'):
            policy.close()
        self.state = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def _use_policy(self, policy, ee=None) -> None:
        """The loop, ticks and recorder for ``policy`` (None: holding), ``ee`` its EE converter."""
        self.policy = policy
        self.cameras = list(policy.config.extra_cameras) if policy is not None else []
        self.ticker = LockstepTicks(('image', 'joint_state', *(f'image_{c}' for c in self.cameras)))
        self.loop = ControlLoop(policy, self.limits, self.period, self.max_age, self.settle,
                                self.cameras, int(self.get_parameter('plan_points').value), ee,
                                self.max_acceleration)
        self.recording = RolloutRecorder(str(self.get_parameter('record_dir').value),
                                         self.limits.joint_names, 1.0 / self.period, self.cameras,
                                         None if ee is None else ee.action_names)
        self.check_size = policy is not None
        if policy is not None:
            self._set_encode_every_tick(self.encode_every_tick)
            self.cache.restart_command()  # the initial command starts an episode

    def _halt(self) -> str:
        """Why the controller may not act whatever its inputs ('' = it may)."""
        if self.state in ('error', 'active'):
            return self.error if self.state == 'error' else ''
        return f'lifecycle state {self.state}: not commanding'

    def _load_policy(self):
        """Load and check the checkpoint: (policy, end-effector converter or None); on failure
        None, and the node stays up in the error state."""
        settings = PolicySettings.from_parameters(lambda name: self.get_parameter(name).value)
        try:
            return load_policy(settings, self.limits.joint_names, self.period, self._now,
                               lambda level, line: emit_log(self.get_logger(), [(level, line)]))
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            self.state, self.error = 'error', f'checkpoint {settings.checkpoint!r} not usable: {exc}'
            self.get_logger().error(f'{self.error}; holding (fix the checkpoint and restart)')
            return None

    # -- inputs ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _fault(self, kind: str, reason: str) -> None:
        if self.faults.add(kind):
            self.get_logger().warning(f'{reason} (further {kind!r} faults are counted in '
                                      '/diagnostics, not logged)')

    def _on_image(self, msg: Image, camera: str = '') -> None:
        """The main camera's image, or extra ``camera``'s; a malformed one is a counted fault."""
        try:
            image = decode_image(msg)
        except ValueError as exc:
            self._fault('bad image', f'ignored {camera + " " if camera else ""}camera image: {exc}')
            return
        policy = self.policy
        if not camera and self.check_size and policy is not None and self.state != 'error':
            self.check_size = False  # the first image: does it fit the checkpoint?
            problem = check_image_size(policy.config.source_image_size, *image.shape[:2])
            if problem and self.get_parameter('strict_image_size').value:
                self.state, self.error = 'error', problem + ' (strict_image_size)'
                self.get_logger().error(f'{self.error}; holding')
            elif problem:
                self.get_logger().warning(problem + '; resizing')
        self.cache.put_image(image, self._now(), camera)
        self._observed(f'image_{camera}' if camera else 'image', msg.header.stamp)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            q, v = parse_joint_state(msg, self.limits.joint_names)
        except ValueError as exc:
            self._fault('bad joint state', f'ignored joint state: {exc}')
            return
        self.cache.put_joint_state(q, known_velocities(v, len(q)), self._now())
        self._observed('joint_state', msg.header.stamp)

    def _observed(self, what: str, stamp) -> None:
        """Lock-step: the tick whose images and joint state have all arrived is due (once)."""
        if self.lockstep:
            with self.lock:
                if self.ticker.observed(what, to_seconds(stamp)):
                    self.worker.wake()

    def _on_command(self, msg: String) -> None:
        # Every command message starts over, the same text too (an evaluator re-sends the
        # instruction for each episode): the policy forgets its history, the robot settles.
        text = msg.data.strip()
        with self.lock:
            due = self.ticker.due if self.lockstep else None  # a lock-step sim's clock comes after
            if not self.cache.put_command(text, self._now() if due is None else max(self._now(), due)):
                return
            if due is not None:  # answer the tick again under the new command (the simulator
                self.worker.wake()  # follows the newest command of a tick it has not stepped)
        self.get_logger().info(f'new command: {text!r}' if text else 'command cleared')

    def _on_estop(self, msg: String) -> None:
        self.cache.put_estop(msg.data, self._now())  # cleared: start over like a new command

    # -- the control loop -----------------------------------------------------------------------
    def _on_timer(self) -> None:
        """Signal the inference thread; a tick that finds it still busy is counted, not queued."""
        if not self.worker.request():
            self.stats.overrun(self._now())

    def _set_threads(self) -> bool:
        if self.policy is None:
            return False
        import torch
        torch.set_num_threads(self.num_threads)  # the tick thread's intra-op pool, deliberately
        return True

    def _tick(self) -> None:
        stamp = None
        if self.lockstep:
            waited = time.perf_counter()
            stamp, problem = self.ticker.await_due(self._now, 1.0, self.worker.stopping)
            self.stats.clock_waited(time.perf_counter() - waited)
            if problem:
                self._fault('clock behind', problem)
            if stamp is None:
                return
        # the latency of a tick: from its complete observation (in lock-step, once the node
        # clock has reached the tick; that wait is the simulator's, counted apart) to its action
        start = time.perf_counter()
        snap = self.cache.take(self._now(), stamp, self._halt())
        result = self.loop.step(snap)
        latency = time.perf_counter() - start
        if result.new_command:
            self._close_recording()
            if self.policy is not None:
                self.recording.start(snap.instruction)  # the file opens on the first acted frame
        if result.fault is not None:
            self._fault(*result.fault)
        if result.log is not None:
            emit_log(self.get_logger(), [result.log])
        if result.command is not None:
            self._publish_target(result.command, result.plan)
        if result.action is not None:
            self._record(snap.image, result.obs, snap.q, snap.v, result.action, snap.now,
                         result.action_ee)
            self.stats.acted(start, latency, result.predicted)

    def _publish_target(self, target: np.ndarray, plan: np.ndarray | None = None) -> None:
        """The target one tick ahead, then the plan's points a tick apart (``plan_points``)."""
        points = np.asarray(target, dtype=np.float64)[None]
        if plan is not None:
            points = np.vstack([points, plan])
        self.command_pub.publish(trajectory_msg(
            list(self.limits.joint_names), self.period * np.arange(1, len(points) + 1), points,
            self.get_clock().now().to_msg()))

    # -- parameters -----------------------------------------------------------------------------
    def _set_encode_every_tick(self, value: bool) -> None:
        self.encode_every_tick = value
        if self.policy is not None:
            self.policy.encode_every_frame = value

    def _on_set_parameters(self, params) -> SetParametersResult:
        """``encode_every_tick`` applies at once; changing the rest is refused, with why."""
        refused = refused_change([param.name for param in params])
        if refused:
            return SetParametersResult(successful=False, reason=refused)
        for param in params:
            if param.name == 'encode_every_tick':
                self._set_encode_every_tick(bool(param.value))
        return SetParametersResult(successful=True)

    # -- recording ------------------------------------------------------------------------------
    def _record(self, image, extra, q, v, action, now, action_ee=None) -> None:
        path, error = self.recording.record_or_stop(image, extra, q, v, action, now, action_ee)
        if path is not None:
            self.get_logger().info(f'recording the run to {path}')
        if error:
            self._fault('recording error', error)

    def _close_recording(self) -> None:
        error = self.recording.close_or_report()
        if error:
            self.get_logger().error(error)

    # -- diagnostics ----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        level, message, values = status_values(
            self.state, self.error, self.loop, self.stats, now=self._now(),
            instruction=self.cache.instruction, period=self.period, faults=self.faults,
            num_threads=self.num_threads, encode_every_tick=self.encode_every_tick,
            policy=self.policy)
        self.diagnostics.publish(level, message, values)

    def shutdown(self) -> None:
        """Fail safe on exit: hold the robot (as a hold does: at the fresh measured position,
        else at the last commanded target) and finish the recording.  Call it while the
        context is still up: ``main`` handles SIGINT and SIGTERM itself for that."""
        self.worker.stop()
        if self.policy is not None and hasattr(self.policy, 'close'):
            self.policy.close()
        target, how = self.loop.final_hold(self.cache.take(self._now()))
        if target is not None and rclpy.ok(context=self.context):
            try:
                self._publish_target(target)
                self.get_logger().info(f'shutting down: holding {how}')
                # reliable delivery before the publisher goes away with the node
                self.command_pub.wait_for_all_acked(Duration(seconds=1.0))
            except Exception as exc:  # noqa: BLE001 - the context may already be shut down
                print(f'vla_controller: final hold not sent: {exc}', file=sys.stderr)
        self._close_recording()


def main(args=None) -> None:
    # rclpy's own SIGINT handler shuts the context down before `finally` runs, so the final
    # hold could never be published: take SIGINT (Ctrl-C, ros2 launch) and SIGTERM here.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signalled: list[str] = []

    def on_signal(signum, _frame) -> None:
        signalled.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = VLAController()
        if node.get_parameter('autostart').value and \
                node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)  # wakes up for a signal within 0.1 s
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if signalled:
                node.get_logger().info(f'{signalled[0]} received')
            node.shutdown()
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
