"""rosbag2 recordings (MCAP or sqlite3, a bag directory or one ``.mcap`` file) -> HDF5 episodes.

A small YAML mapping says which topics are the cameras, the joint state, the command (the
action) and the instruction, how to cut episodes and the rate to resample to::

    image: /camera/image_raw               # main camera: sensor_msgs/Image or CompressedImage
    cameras: {wrist: /camera/wrist/image_raw}   # extra cameras (optional)
    joint_states: /joint_states            # sensor_msgs/JointState
    action: /joint_trajectory_controller/joint_trajectory  # JointTrajectory, Float64MultiArray
                                           # or JointState (a leader arm's positions)
    instruction: /voice_command            # std_msgs/String topic (optional; or --instruction)
    joint_names: [joint1, ..., gripper]    # optional: default the first JointState's names
    split: bag                             # bag (one episode per bag) | gap | markers
    gap: 1.0                               # split: gap -> a silence this long (s) ends an episode
    marker_topic: /episode                 # split: markers -> std_msgs/String start | success |
                                           #   failure | stop (stop = `success` below)
    success: true                          # the success flag where the bag does not say
    fps: 30                                # resampling rate (Hz)
    max_age: {image: 0.2, joint_states: 0.2, action: 0.2}  # staleness limits (s)
    time: log                              # log (receive time) | header (message stamps)

Episodes are resampled by replaying the messages, in time order, through the recorder's own
:class:`~vla_collect.recorder.Recorder`: at every tick the latest message of each stream, no
older than its staleness limit, otherwise the step is dropped and counted.  So an imported
bag pairs frames, states and commands exactly as the live recorder would.  Messages are
streamed (memory does not grow with the bag), episodes are written under temporary names and
renamed when complete.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vla_collect.recorder import Recorder, RecorderError
from vla_collect.stream_pairing import ACTION, IMAGE, JOINT_STATES

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
ACTION_TYPES = ('trajectory_msgs/msg/JointTrajectory', 'std_msgs/msg/Float64MultiArray',
                JOINT_STATE_TYPE)
STRING_TYPE = 'std_msgs/msg/String'
#: a message this close after a tick (s) still counts for it: stamps rounded to nanoseconds and
#: a tick grid of float seconds must not decide the pairing
TICK_TOLERANCE = 1e-3
SPLITS = ('bag', 'gap', 'markers')


class BagImportError(ValueError):
    """A bag or mapping that cannot be imported; the message names the file, topic or key."""


@dataclass
class BagMapping:
    """Which topics make an episode, how to cut and resample them (see the module docstring)."""

    image: str
    joint_states: str
    action: str
    cameras: dict[str, str] = field(default_factory=dict)
    instruction: str | None = None  # a std_msgs/String topic
    joint_names: list[str] | None = None
    split: str = 'bag'
    gap: float = 1.0
    marker_topic: str | None = None
    success: bool = True
    fps: float = 30.0
    max_age: dict[str, float] = field(default_factory=dict)
    time: str = 'log'

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = 'mapping') -> BagMapping:
        if not isinstance(data, Mapping):
            raise BagImportError(f'{source}: expected a mapping of keys to topics, got '
                                 f'{type(data).__name__}')
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BagImportError(f'{source}: unknown key(s) {unknown}; expected some of {sorted(known)}')
        missing = [k for k in ('image', 'joint_states', 'action') if not data.get(k)]
        if missing:
            raise BagImportError(f'{source}: missing topic(s) for {missing} (e.g. image: '
                                 '/camera/image_raw, joint_states: /joint_states, action: '
                                 '/joint_trajectory_controller/joint_trajectory)')
        mapping = cls(**{k: v for k, v in data.items() if v is not None})
        mapping.cameras = {str(k): str(v) for k, v in (mapping.cameras or {}).items()}
        topics = [mapping.image, *mapping.cameras.values(), mapping.joint_states, mapping.action,
                  *(t for t in (mapping.instruction, mapping.marker_topic) if t)]
        repeated = sorted({t for t in topics if topics.count(t) > 1})
        if repeated:
            raise BagImportError(f'{source}: topic(s) {repeated} mapped to more than one stream; '
                                 'each camera, the joint states, the action, the instruction and the markers need their own')
        if mapping.split not in SPLITS:
            raise BagImportError(f'{source}: split must be one of {SPLITS}, got {mapping.split!r}')
        if mapping.split == 'markers' and not mapping.marker_topic:
            raise BagImportError(f'{source}: split: markers needs marker_topic (a std_msgs/String '
                                 'topic carrying start / success / failure / stop)')
        if mapping.time not in ('log', 'header'):
            raise BagImportError(f'{source}: time must be log or header, got {mapping.time!r}')
        if not (isinstance(mapping.fps, (int, float)) and math.isfinite(mapping.fps) and mapping.fps > 0):
            raise BagImportError(f'{source}: fps must be a positive number, got {mapping.fps!r}')
        if not mapping.gap > 0:
            raise BagImportError(f'{source}: gap must be > 0 s, got {mapping.gap!r}')
        return mapping

    @classmethod
    def from_yaml(cls, path: str | Path) -> BagMapping:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise BagImportError(f'mapping file {path} not found') from None
        except yaml.YAMLError as exc:
            raise BagImportError(f'mapping file {path} is not valid YAML: {exc}') from None
        return cls.from_dict(data or {}, source=str(path))

    def streams(self) -> dict[str, str]:
        """topic -> recorder stream name."""
        out = {self.image: IMAGE, self.joint_states: JOINT_STATES, self.action: ACTION}
        for camera, topic in self.cameras.items():
            out[topic] = f'{IMAGE}_{camera}'
        return out


@dataclass
class ImportReport:
    """What an import kept, resampled and dropped, per episode and in all."""

    source: str
    episodes: list[dict] = field(default_factory=list)
    messages: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # why an episode span was not written

    def as_dict(self) -> dict:
        steps = sum(e['steps'] for e in self.episodes)
        dropped = sum(e['dropped'] for e in self.episodes)
        return {'source': self.source, 'episodes': self.episodes, 'messages': self.messages,
                'skipped': self.skipped, 'steps': steps, 'dropped_steps': dropped,
                'drop_ratio': round(dropped / (steps + dropped), 6) if steps + dropped else 0.0}


def decode_image(msg: Any, msgtype: str, topic: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a raw or compressed (jpeg/png) image message."""
    if msgtype == 'sensor_msgs/msg/CompressedImage':
        import cv2
        data = np.frombuffer(bytes(msg.data), np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise BagImportError(f'{topic}: cannot decode a CompressedImage (format '
                                 f'{msg.format!r}, {data.size} bytes); expected jpeg or png')
        return np.ascontiguousarray(bgr[..., ::-1])
    from vla_common.messages import ImageConversionError, image_to_rgb
    try:
        return image_to_rgb(msg)
    except ImageConversionError as exc:
        raise BagImportError(f'{topic}: {exc}') from None


def action_of(msg: Any, msgtype: str, names: list[str], topic: str) -> np.ndarray:
    """The commanded action of one message, in ``names`` order."""
    from vla_collect.ros_conversions import joint_state_to_arrays, trajectory_to_action
    if msgtype == 'std_msgs/msg/Float64MultiArray':
        data = np.asarray(msg.data, dtype=np.float64)
        if data.size != len(names):
            raise ValueError(f'{topic}: Float64MultiArray has {data.size} values for '
                             f'{len(names)} joints {names}')
        return data
    if msgtype == JOINT_STATE_TYPE:
        return joint_state_to_arrays(msg, names)[0]
    return trajectory_to_action(msg, names)


def _open_reader(path: Path):
    """An opened rosbags reader (close it), or a BagImportError naming the file."""
    from rosbags.rosbag2 import Reader
    if not path.exists():
        raise BagImportError(f'{path}: no such bag (give a rosbag2 directory or a .mcap file)')
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable bags
        raise BagImportError(f'{path}: not a readable rosbag2 bag ({exc})') from None
    return reader


def _stamp(msg: Any, log_time_ns: int, use_header: bool) -> float:
    if use_header and hasattr(msg, 'header'):
        stamp = msg.header.stamp
        value = stamp.sec + stamp.nanosec * 1e-9
        if value > 0:
            return value
    return log_time_ns * 1e-9


class BagImporter:
    """Replays one bag through a :class:`Recorder` into ``out_dir``."""

    def __init__(self, mapping: BagMapping, out_dir: str | Path, instruction: str | None = None,
                 robot: str = 'imported') -> None:
        self.mapping = mapping
        self.out_dir = Path(out_dir)
        self.instruction = instruction
        self.robot = robot

    def _check_topics(self, path: Path, connections) -> dict[str, str]:
        present = {c.topic: c.msgtype for c in connections}
        wanted = {**{t: IMAGE_TYPES for t in [self.mapping.image, *self.mapping.cameras.values()]},
                  self.mapping.joint_states: (JOINT_STATE_TYPE,), self.mapping.action: ACTION_TYPES}
        if self.mapping.instruction:
            wanted[self.mapping.instruction] = (STRING_TYPE,)
        if self.mapping.split == 'markers':
            wanted[str(self.mapping.marker_topic)] = (STRING_TYPE,)
        for topic, types in wanted.items():
            if topic not in present:
                raise BagImportError(f'{path}: topic {topic} is not in the bag; it has '
                                     f'{sorted(present)}')
            if present[topic] not in types:
                raise BagImportError(f'{path}: topic {topic} is {present[topic]}, expected '
                                     f'{" or ".join(types)}')
        return {t: present[t] for t in wanted}

    def _messages(self, reader, topics: dict[str, str]) -> Iterator[tuple[str, str, Any, float]]:
        from rosbags.typesys import Stores, get_typestore
        typestore = get_typestore(Stores.ROS2_JAZZY)
        connections = [c for c in reader.connections if c.topic in topics]
        use_header = self.mapping.time == 'header'
        for conn, log_time, raw in reader.messages(connections=connections):
            try:
                msg = typestore.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:
                raise BagImportError(f'{conn.topic}: cannot deserialize a {conn.msgtype} '
                                     f'message ({exc})') from None
            yield conn.topic, conn.msgtype, msg, _stamp(msg, log_time, use_header)

    def run(self, path: str | Path, report: ImportReport) -> None:
        path = Path(path)
        if self.instruction is None and not self.mapping.instruction:
            raise BagImportError(f'{path}: no instruction: map an instruction topic '
                                 '(instruction: /voice_command) or give --instruction TEXT')
        reader = _open_reader(path)
        try:
            topics = self._check_topics(path, reader.connections)
            self._replay(path, reader, topics, report)
        finally:
            reader.close()

    def _replay(self, path: Path, reader, topics: dict[str, str], report: ImportReport) -> None:
        m = self.mapping
        streams = m.streams()
        names = list(m.joint_names) if m.joint_names else None
        dt = 1.0 / m.fps
        instruction = self.instruction
        state = {'next_tick': None, 'last_time': None, 'armed': m.split != 'markers',
                 'reasons': {}}

        def make_recorder(joint_names: list[str]) -> Recorder:
            return Recorder(self.out_dir, joint_names, fps=m.fps, cameras=list(m.cameras),
                            max_age=m.max_age, robot=self.robot)

        def start(now: float) -> None:
            recorder.start(instruction, now, attrs={'source': str(path)})
            state['next_tick'] = now
            state['reasons'] = dict(recorder.drop_reasons)

        def finish(success: bool, why: str) -> None:
            if not recorder.recording:
                return
            try:
                summary = recorder.stop(success)
            except RecorderError as exc:
                report.skipped.append(f'{path}: {why}: {exc}')
                return
            before = state['reasons']
            reasons = {k: v - before.get(k, 0) for k, v in recorder.drop_reasons.items()
                       if v - before.get(k, 0)}
            report.episodes.append({'path': str(summary.path), 'source': str(path),
                                    'steps': summary.steps, 'dropped': summary.dropped,
                                    'success': summary.success,
                                    'language_command': summary.language_command,
                                    'ended_by': why, 'drop_reasons': reasons})
            state['next_tick'] = None

        if names is None:
            names = self._first_joint_names(reader, path)
        recorder = make_recorder(names)
        try:
            for topic, msgtype, msg, t in self._messages(reader, topics):
                report.messages[topic] = report.messages.get(topic, 0) + 1
                last = state['last_time']
                if (m.split == 'gap' and last is not None and t - last > m.gap
                        and recorder.recording):
                    finish(m.success, f'gap of {t - last:.2f} s')
                state['last_time'] = t if last is None else max(last, t)
                # ticks before this message see the state before it
                while recorder.recording and state['next_tick'] + TICK_TOLERANCE < t:
                    recorder.sample(state['next_tick'])
                    state['next_tick'] += dt
                if topic == m.instruction and msgtype == STRING_TYPE:
                    text = str(msg.data).strip()
                    if text and self.instruction is None:
                        instruction = text
                    continue
                if topic == m.marker_topic and m.split == 'markers':
                    word = str(msg.data).strip().lower()
                    if word == 'start':
                        finish(m.success, 'start marker')  # a start without a stop ends the last
                        state['armed'] = True
                    elif word in ('success', 'failure', 'stop'):
                        finish({'success': True, 'failure': False}.get(word, m.success),
                               f'{word} marker')
                        state['armed'] = False
                    else:
                        raise BagImportError(f'{path}: marker {word!r} on {topic}; expected '
                                             'start, success, failure or stop')
                    continue
                stream = streams[topic]
                value = self._value(stream, topic, msgtype, msg, names)
                if value is None:
                    continue
                stamp = t
                if recorder.recording and 0 < t - state['next_tick'] <= TICK_TOLERANCE:
                    stamp = state['next_tick']  # counts for the tick it is within tolerance of
                recorder.update(stream, value, stamp)
                if (not recorder.recording and state['armed'] and instruction is not None
                        and all(s.fresh(t) for s in recorder.streams.values())):
                    start(t)
            if recorder.recording:
                end = state['last_time']
                while state['next_tick'] <= end + TICK_TOLERANCE:
                    recorder.sample(state['next_tick'])
                    state['next_tick'] += dt
                finish(m.success, 'end of bag')
        except BaseException:
            if recorder.recording:
                recorder.discard()  # the temporary file goes; nothing half-written stays
            raise

    def _first_joint_names(self, reader, path: Path) -> list[str]:
        """The joint names of the first joint state in the bag (the mapping may set them)."""
        topic = self.mapping.joint_states
        for _, _, msg, _ in self._messages(reader, {topic: JOINT_STATE_TYPE}):
            return [str(n) for n in msg.name]
        raise BagImportError(f'{path}: no message on {topic}: cannot tell the joint names (set '
                             'joint_names in the mapping)')

    def _value(self, stream: str, topic: str, msgtype: str, msg: Any, names: list[str]) -> Any:
        from vla_collect.ros_conversions import MissingJointError, joint_state_to_arrays
        if stream.startswith(IMAGE):
            return decode_image(msg, msgtype, topic)
        try:
            if stream == JOINT_STATES:
                return joint_state_to_arrays(msg, names)
            return action_of(msg, msgtype, names, topic)
        except MissingJointError as exc:
            raise BagImportError(f'{topic}: {exc}') from None
        except ValueError:
            return None  # a malformed message: the stream goes stale and the step is counted


def import_bags(sources: list[Path], out_dir: Path, mapping: BagMapping,
                instruction: str | None = None, progress: bool = True) -> ImportReport:
    """Import every bag in ``sources`` into ``out_dir``; returns the report."""
    from tqdm import tqdm
    report = ImportReport(source=', '.join(map(str, sources)))
    importer = BagImporter(mapping, out_dir, instruction)
    for path in tqdm(sources, desc='import bags', unit='bag', disable=not progress):
        importer.run(path, report)
    return report


def find_bags(source: Path) -> list[Path]:
    """A bag directory, one .mcap file, or a directory of bags (each sub-directory with a
    metadata.yaml, or loose .mcap files)."""
    if source.is_file():
        return [source]
    if (source / 'metadata.yaml').is_file():
        return [source]
    bags = sorted(p.parent for p in source.glob('*/metadata.yaml'))
    bags += sorted(p for p in source.glob('*.mcap') if not (p.parent / 'metadata.yaml').exists())
    if not bags:
        raise BagImportError(f'{source}: no rosbag2 bag here (a directory with metadata.yaml, '
                             'a .mcap file, or a directory of them)')
    return bags
