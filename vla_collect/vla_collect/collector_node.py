"""``ros2 run vla_collect teleop_collector``: the synchronised demonstration recorder.

Subscribes ``/camera/image_raw`` (sensor-data QoS), ``/joint_states``, the command that
reaches the robot (``/joint_trajectory_controller/joint_trajectory``, the action), ``/joy``
and ``/voice_command``.  A ``rate`` Hz timer samples the latest message of every stream; a
step with a stream older than its limit is not recorded and is counted as dropped.  Each
episode is streamed to ``output_dir/episode_NNNNNN.hdf5`` (see ``episode_io``).

Episodes start and stop with the joystick (``start_button`` toggles, stopping as a success;
``fail_button`` stops as a failure; ``discard_button`` drops the episode) or with services:

    ~/start    std_srvs/Trigger   start with the current language command
    ~/stop     std_srvs/SetBool   stop and save; data = success flag
    ~/discard  std_srvs/Trigger   drop the current episode

Beside a lock-step simulator (``lockstep: true``) the recorder does not sample on a timer: it
pairs by header stamps (``stream_pairing.TickPairing``): step t is the frame and joint state stamped
T_t with the last robot command that arrived between tick t's first observation and tick t+1's
(stamped T_t, or T_{t-1} by a gate whose clock lagged), i.e. the command sent after seeing frame
t, the one the simulator stepped with.  It acknowledges every tick it has
gathered (observations and answer) on ``~/tick`` (``std_msgs/Header``, stamp T_t), whether it
is recording or not; the simulator waits for that (``lockstep_acks``), so the recorder never falls
behind.  With ``background_writes`` (the default) the HDF5 writes run in a worker thread
(``Recorder(background=True)``): a tick is acknowledged as soon as it is gathered, not after the
previous tick's compression and the periodic flush, and at most ``Recorder.max_pending`` ticks
wait to be written (then the acknowledgements wait too).  A recording starts with the tick in progress when ``~/start`` is called and ends with the
last tick finished before ``~/stop``.

With ``record_bag: true`` the raw messages of every subscribed topic (cameras, joint states,
the command, ``/voice_command``, ``/joy``) are also written, as they arrived, to a rosbag2
directory beside the episode (``episode_NNNNNN.bag/``; ``bag_storage``, ``bag_compression``):
see ``vla_collect.episode_bag``.  It is renamed into place when the episode is saved and
deleted with a discarded one; ``vla dataset import --format rosbag`` re-cuts it.

With ``ee_action_topic`` set, a source's end-effector command (``JointTrajectory`` named
``ee_action_names``, stamped with its tick, e.g. ``/scripted_expert/ee_command``) is recorded too,
as ``/actions_ee`` (``episode_writer``); in lock-step it is part of the tick, like an observation.

The language command is the last ``/voice_command`` or the ``language_command`` parameter,
whichever was set last; ``episode_metadata`` (a JSON object) adds attributes to the next
episodes (``vla collect`` stores the simulator task and seed this way).  State and drop counts go to ``/diagnostics`` and, as JSON, to
``~/status`` (latched).
"""
from __future__ import annotations

import json

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState, Joy
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vla_collect.bag_recording import BagRecording
from vla_collect.episode_bag import COMPRESSIONS, STORAGES
from vla_collect.episode_metadata import parse_episode_metadata
from vla_collect.joy_buttons import ButtonEdges
from vla_collect.recorder import ACTION_EE, Recorder, RecorderError
from vla_collect.ros_conversions import joint_state_to_arrays, trajectory_to_action
from vla_collect.stream_pairing import ACTION, IMAGE, JOINT_STATES, TickPairing, TickStep
from vla_common.diagnostics import DiagnosticsPublisher
from vla_common.messages import ImageConversionError, image_to_rgb, time_msg, to_seconds
from vla_common.parameters import declare_robot_parameters, describe
from vla_common.qos import LATCHED


class CollectorNode(Node):
    def __init__(self) -> None:
        super().__init__('teleop_collector')
        d = self.declare_parameter
        declare_robot_parameters(self, {  # default: the robot description's (robot.yaml)
            'joint_names': describe('the recorded joints, in state order', read_only=True)})
        d('action_names', [''], describe("action vector order (['']: joint_names, absolute joint "
                                         'targets)', read_only=True))
        d('output_dir', 'vla_data', describe('episodes go to <output_dir>/episode_NNNNNN.hdf5',
                                             read_only=True))
        d('rate', 30.0, describe('sampling rate (Hz, node clock)', 0.1, 1000.0, read_only=True))
        d('language_command', '', describe('command of the next episode; /voice_command sets it too'))
        d('episode_metadata', '{}', describe('JSON object of extra attributes of the next episodes'))
        d('robot_name', 'robot', describe("stored in every episode's robot attribute", read_only=True))
        d('image_timeout', 0.2, describe('s; a step whose latest image is older is dropped (counted)',
                                         0.001, 60.0, read_only=True))
        d('joint_state_timeout', 0.2, describe('s; the same for /joint_states', 0.001, 60.0, read_only=True))
        d('action_timeout', 0.2, describe('s; the same for the command that reaches the robot',
                                          0.001, 60.0, read_only=True))
        d('extra_cameras', [''], describe("more cameras recorded from /camera/<name>/image_raw (['']: "
                                          'none)', read_only=True))
        d('start_button', 9, describe('Joy button that starts an episode / stops it as a success'))
        d('fail_button', 8, describe('Joy button that stops the episode as a failure'))
        d('discard_button', 10, describe('Joy button that drops the episode'))
        d('min_free_mb', 64.0, describe('stop the episode cleanly below this much free disk (MB)',
                                        0.0, 1e9, read_only=True))
        d('lockstep', False, describe('one step per lock-step tick, paired by header stamps and '
                                      'acknowledged on ~/tick', read_only=True))
        d('background_writes', True, describe('HDF5 writes in a worker thread', read_only=True))
        d('record_bag', False, describe('also keep the raw messages in <output_dir>/episode_NNNNNN.bag/',
                                        read_only=True))
        d('bag_storage', 'mcap', describe(f'rosbag2 storage: {" or ".join(STORAGES)}', read_only=True))
        d('bag_compression', 'zstd', describe(f'bag compression: {" or ".join(COMPRESSIONS)}', read_only=True))
        d('ee_action_topic', '', describe("also record the end-effector command on this topic ('': "
                                          'none) as /actions_ee', read_only=True))
        d('ee_action_names', ['ee_dx', 'ee_dy', 'ee_dz', 'ee_rx', 'ee_ry', 'ee_rz', 'gripper'],
          describe('names (order) of the end-effector command', read_only=True))
        p = lambda name: self.get_parameter(name).value  # noqa: E731

        self.joint_names = [str(n) for n in p('joint_names')]
        action_names = [str(n) for n in p('action_names') if n] or self.joint_names
        cameras = [str(c) for c in p('extra_cameras') if c]
        ee_topic = str(p('ee_action_topic'))
        ee_names = [str(n) for n in p('ee_action_names') if n] if ee_topic else None
        rate = float(p('rate'))
        if rate <= 0:
            raise ValueError(f'rate must be > 0 Hz, got {rate}')
        self.recorder = Recorder(
            p('output_dir'), self.joint_names, action_names, fps=rate,
            max_age={IMAGE: float(p('image_timeout')), JOINT_STATES: float(p('joint_state_timeout')),
                     ACTION: float(p('action_timeout'))},
            cameras=cameras, robot=str(p('robot_name')),
            min_free_bytes=int(float(p('min_free_mb')) * 2**20),
            background=bool(p('background_writes')), ee_action_names=ee_names)
        self.language_command = str(p('language_command'))
        self.episode_metadata = parse_episode_metadata(str(p('episode_metadata')))
        self.lockstep = bool(p('lockstep'))
        self.pairing = (TickPairing([IMAGE, JOINT_STATES] + [f'{IMAGE}_{c}' for c in cameras]
                                    + ([ACTION_EE] if ee_topic else []), period=1.0 / rate)
                        if self.lockstep else None)
        self.buttons = ButtonEdges()
        self.bad_messages: dict[str, int] = {}
        self.record_bag = bool(p('record_bag'))
        self.bags = BagRecording(str(p('bag_storage')), str(p('bag_compression')))
        self.add_on_set_parameters_callback(self._on_parameters)

        self.status_pub = self.create_publisher(String, '~/status', LATCHED)
        self.tick_pub = self.create_publisher(Header, '~/tick', 10)
        self.diagnostics = DiagnosticsPublisher(self, 'vla_collect: teleop_collector',
                                                str(p('robot_name')))
        # The command subscription first: when a busy recorder finds the command of tick t and
        # the observations of tick t+1 waiting together, the executor serves subscriptions in
        # creation order, and the command must be paired before tick t+1 starts (lock-step).
        streams = [(JointTrajectory, '/joint_trajectory_controller/joint_trajectory',
                    self._on_command, 10),
                   (Image, '/camera/image_raw', lambda m: self._on_image(IMAGE, m),
                    qos_profile_sensor_data),
                   *((Image, f'/camera/{c}/image_raw',
                      lambda m, c=c: self._on_image(f'{IMAGE}_{c}', m), qos_profile_sensor_data)
                     for c in cameras),
                   (JointState, '/joint_states', self._on_joint_state, qos_profile_sensor_data),
                   *(((JointTrajectory, ee_topic, self._on_ee_command, 10),) if ee_topic else ()),
                   (Joy, '/joy', self._on_joy, 10),
                   (String, '/voice_command', self._on_voice_command, 10)]
        for msg_type, topic, callback, qos in streams:
            self.create_subscription(msg_type, topic, callback, qos)
        if self.record_bag:
            # the bag takes the bytes as they came over DDS (as `ros2 bag record` does), from
            # subscriptions of their own on the same topics: nothing is deserialized and
            # serialized again
            for msg_type, topic, _callback, qos in streams:
                name = f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'
                self.create_subscription(msg_type, topic,
                                         lambda data, t=topic, n=name: self._on_raw(t, n, data),
                                         qos, raw=True)
        self.create_service(Trigger, '~/start', self._on_start)
        self.create_service(SetBool, '~/stop', self._on_stop)
        self.create_service(Trigger, '~/discard', self._on_discard)
        if not self.lockstep:
            self.create_timer(1.0 / rate, self._sample)
        self.create_timer(1.0, self._publish_status)
        self.get_logger().info(
            f'recording {len(self.joint_names)} joints and {len(action_names)} actions '
            + ('per lock-step tick (paired by stamps)' if self.lockstep else f'at {rate:g} Hz')
            + f' into {self.recorder.output_dir}; START on the joystick or '
            f'{self.get_fully_qualified_name()}/start begins an episode')
        self._publish_status()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _bad(self, what: str, text: str) -> None:
        self.bad_messages[what] = self.bad_messages.get(what, 0) + 1
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    # -- parameters -----------------------------------------------------------------------
    def _on_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'language_command':
                self.language_command = str(param.value)
            elif param.name == 'episode_metadata':
                try:
                    self.episode_metadata = parse_episode_metadata(str(param.value))
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- streams ------------------------------------------------------------------------------
    @staticmethod
    def _stamp(msg) -> float:
        return to_seconds(msg.header.stamp)

    def _on_image(self, stream: str, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ImageConversionError as exc:
            self._bad('image', f'{stream} frame dropped: {exc}')
            return
        self.recorder.update(stream, rgb, self._now())
        self._observe(stream, rgb, msg)

    def _observe(self, stream: str, value, msg) -> None:
        """Lock-step: add an observation to its tick; record the tick it finished."""
        if self.pairing is None:
            return
        finished = self.pairing.observe(stream, value, self._stamp(msg))
        if finished is not None and self.recorder.recording:
            self._record(finished)
        self._ack()

    def _record(self, step: TickStep) -> None:
        try:
            self.recorder.record(step.values, step.stamp)
        except RecorderError as exc:
            self.get_logger().error(str(exc))
            self._publish_status()

    def _ack(self) -> None:
        stamp = self.pairing.answered()
        if stamp is not None:
            self.tick_pub.publish(Header(stamp=time_msg(stamp)))

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            value = joint_state_to_arrays(msg, self.joint_names)
        except ValueError as exc:  # MissingJointError too
            self._bad('joint_states', f'/joint_states ignored: {exc}')
            return
        self.recorder.update(JOINT_STATES, value, self._now())
        self._observe(JOINT_STATES, value, msg)

    def _on_command(self, msg: JointTrajectory) -> None:
        try:
            action = trajectory_to_action(msg, self.recorder.action_names)
        except ValueError as exc:
            self._bad('action', f'command ignored: {exc}')
            return
        self.recorder.update(ACTION, action, self._now())
        if self.pairing is not None:
            self.pairing.act(action, self._stamp(msg))
            self._ack()

    def _on_ee_command(self, msg: JointTrajectory) -> None:
        try:
            value = trajectory_to_action(msg, self.recorder.ee_action_names)
        except ValueError as exc:
            self._bad('action_ee', f'end-effector command ignored: {exc}')
            return
        self.recorder.update(ACTION_EE, value, self._now())
        self._observe(ACTION_EE, value, msg)  # stamped with the tick it answers

    def _on_raw(self, topic: str, msgtype: str, data: bytes) -> None:
        """``record_bag``: one message, as it arrived, into the episode's bag."""
        if self.bags.bag is not None:
            error = self.bags.write(topic, msgtype, self.get_clock().now().nanoseconds, data)
            if error:
                self.get_logger().error(error)

    def _close_bag(self, summary) -> None:
        """Finish (a saved episode) or delete (anything else) the episode's bag."""
        error = self.bags.close(summary)
        if error:
            self.get_logger().error(error)

    def _on_voice_command(self, msg: String) -> None:
        command = msg.data.strip()
        if not command:
            return
        if self.recorder.recording and command != self.recorder.current.language_command:
            self.get_logger().warning(f'language command {command!r} applies to the next episode; '
                                      'the current one keeps its command')
        self.language_command = command

    def _on_joy(self, msg: Joy) -> None:
        pressed = self.buttons.pressed(msg.buttons)
        p = lambda name: int(self.get_parameter(name).value)  # noqa: E731
        if p('discard_button') in pressed and self.recorder.recording:
            self._discard()
        elif p('fail_button') in pressed and self.recorder.recording:
            self._stop(False)
        elif p('start_button') in pressed:
            if self.recorder.recording:
                self._stop(True)
            else:
                self._start()

    # -- episode control ------------------------------------------------------------------------
    def _start(self) -> tuple[bool, str]:
        try:
            path = self.recorder.start(self.language_command, self._now(),
                                       attrs=self.episode_metadata)
        except RecorderError as exc:
            self.get_logger().error(f'cannot start: {exc}')
            return False, str(exc)
        if self.record_bag:
            self.bags.start(path)
        self.get_logger().info(f'recording {path.name}: {self.language_command!r}')
        self._publish_status()
        return True, json.dumps({'path': str(path), 'language_command': self.language_command})

    def _stop(self, success: bool) -> tuple[bool, str]:
        try:
            summary = self.recorder.stop(success)
        except RecorderError as exc:
            self._close_bag(None)
            self.get_logger().error(str(exc))
            self._publish_status()
            return False, str(exc)
        self._close_bag(summary)
        self.get_logger().info(f'saved {summary.path} ({summary.steps} steps, {summary.dropped} '
                               f'dropped, success={summary.success})')
        self._publish_status()
        return True, json.dumps(summary.as_dict())

    def _discard(self) -> tuple[bool, str]:
        try:
            summary = self.recorder.discard()
        except RecorderError as exc:
            return False, str(exc)
        self._close_bag(None)
        self.get_logger().info(f'discarded {summary.path.name} ({summary.steps} steps)')
        self._publish_status()
        return True, json.dumps(summary.as_dict())

    def _on_start(self, request, response):
        response.success, response.message = self._start()
        return response

    def _on_stop(self, request, response):
        response.success, response.message = self._stop(bool(request.data))
        return response

    def _on_discard(self, request, response):
        response.success, response.message = self._discard()
        return response

    # -- the 30 Hz loop -------------------------------------------------------------------------
    def _sample(self) -> None:
        if not self.recorder.recording:
            return
        try:
            self.recorder.sample(self._now())
        except RecorderError as exc:
            self.get_logger().error(str(exc))
            self._publish_status()

    # -- reporting ------------------------------------------------------------------------------
    def _publish_status(self) -> None:
        status = self.recorder.status(self._now())
        status['bad_messages'] = dict(self.bad_messages)
        if self.record_bag:
            status['bag'] = self.bags.status()
        status['next_language_command'] = self.language_command
        self.status_pub.publish(String(data=json.dumps(status)))
        if status['last_error']:
            level, message = 'error', status['last_error']
        elif status['state'] == 'recording' and status['dropped']:
            level, message = 'warn', f'recording, {status["dropped"]} steps dropped'
        else:
            level, message = 'ok', status['state']
        values = {k: v for k, v in status.items() if k not in ('stream_age_s', 'last_episode', 'bag')}
        values.update({f'bag_{k}': v for k, v in status.get('bag', {}).items()})
        values.update({f'age_{k}': v for k, v in status['stream_age_s'].items()})
        self.diagnostics.publish(level, message, values)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = CollectorNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if node.recorder.recording:  # keep what was recorded: save it as unfinished
                try:
                    summary = node.recorder.stop(success=False)
                    node._close_bag(summary)
                    node.get_logger().info(f'shutting down: saved {summary.path} as unsuccessful')
                except RecorderError as exc:
                    node._close_bag(None)
                    node.get_logger().warning(f'shutting down: {exc}')
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
