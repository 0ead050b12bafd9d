"""ROS message <-> Python value conversions that every package needs: stamps and durations in
seconds, ``JointState`` readings in the robot's joint order, ``JointTrajectory`` commands and
``sensor_msgs/Image`` frames.

Dependency-light on purpose (numpy and message types only; no cv_bridge, whose PyPI release is
ROS 1 code that fails on NumPy 2).  The image functions also read rosbags' message objects,
which carry the same fields.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

#: encodings image_to_rgb converts, with their channel count
SUPPORTED_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}

_NS = 1_000_000_000


class JointStateError(ValueError):
    """A joint state that cannot be read in the robot's joint order; ``kind`` names the fault
    for counting, the message names the joints and the sizes."""

    kind = 'malformed joint state'


class MissingJointError(JointStateError):
    """A message lacks joints the robot is configured with; the message names them and the
    expected names."""

    kind = 'joint state missing joints'


class ImageConversionError(ValueError):
    """An image that cannot be turned into RGB; the message names the encoding or size fault."""


# -- time -------------------------------------------------------------------------------------
def to_seconds(msg: Time | Duration) -> float:
    """Seconds of a ``builtin_interfaces`` Time or Duration (``sec`` + ``nanosec``)."""
    return msg.sec + msg.nanosec * 1e-9


def _split(seconds: float) -> tuple[int, int]:
    # rounded to the nearest nanosecond first: 2.9999999999 s is 3.0, not 2 s with a nanosecond
    # field that wrapped to 0 (a clock running back a second)
    return divmod(int(round(seconds * 1e9)), _NS)


def time_msg(seconds: float) -> Time:
    """A Time stamp of ``seconds``, to the nearest nanosecond."""
    sec, nanosec = _split(seconds)
    return Time(sec=sec, nanosec=nanosec)


def duration_msg(seconds: float) -> Duration:
    """A Duration of ``seconds``, to the nearest nanosecond (negative: ``sec`` < 0, ``nanosec`` >= 0)."""
    sec, nanosec = _split(seconds)
    return Duration(sec=sec, nanosec=nanosec)


# -- joint states -----------------------------------------------------------------------------
def joint_index(names: Sequence[str], joint_names: Sequence[str], what: str = 'joint state') -> list[int]:
    """Where each of ``joint_names`` is in ``names`` (the first of repeated names); raises
    :class:`MissingJointError` naming every joint ``names`` lacks and the expected names."""
    lookup: dict[str, int] = {}
    for i, name in enumerate(names):
        lookup.setdefault(str(name), i)
    missing = [n for n in joint_names if n not in lookup]
    if missing:
        raise MissingJointError(f'{what} is missing joint(s) {missing}; it names {[str(n) for n in names]}, '
                                f'expected all of {list(joint_names)}')
    return [lookup[n] for n in joint_names]


def joint_state_arrays(names: Sequence[str], positions: Sequence[float], velocities: Sequence[float],
                       joint_names: Sequence[str], *, require_finite: bool = True,
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions (N,) and velocities (N,) -- or None when the message has none -- as float64
    arrays in ``joint_names`` order, from a joint state's ``name``, ``position`` and ``velocity``.

    Extra joints (fingers, a mobile base) are ignored.  Raises :class:`MissingJointError` naming
    every joint of ``joint_names`` the message lacks (a position is never filled in), and
    :class:`JointStateError` when ``position`` (or a non-empty ``velocity``) does not match
    ``name`` in length or, with ``require_finite``, a position is NaN or inf (the safety layer
    passes ``require_finite=False``: it latches on them).  Velocities are returned as measured,
    NaN included (drivers use it for "unknown"); callers that want zeros for what is unknown say
    so with :func:`known_velocities`.
    """
    names = list(names)
    if len(positions) != len(names):
        raise JointStateError(f'joint state has {len(positions)} positions for {len(names)} names')
    index = joint_index(names, joint_names)
    q = np.asarray(positions, dtype=np.float64)[index]
    if require_finite and not np.all(np.isfinite(q)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(q))]
        raise JointStateError(f'joint state has non-finite positions for {bad}: {q.tolist()}')
    if len(velocities) == 0:
        return q, None
    if len(velocities) != len(names):
        raise JointStateError(f'joint state has {len(velocities)} velocities for {len(names)} names')
    return q, np.asarray(velocities, dtype=np.float64)[index]


def parse_joint_state(msg: JointState, joint_names: Sequence[str], *, require_finite: bool = True,
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`joint_state_arrays` of a ``sensor_msgs/JointState`` (or a rosbag's message
    object, which carries the same fields)."""
    return joint_state_arrays(msg.name, msg.position, msg.velocity, joint_names,
                              require_finite=require_finite)


def known_velocities(velocities: np.ndarray | None, n: int) -> np.ndarray:
    """Velocities with what is unknown as zero: none at all (an empty ``velocity``) gives
    zeros, a NaN or inf velocity reads as 0 (what the recorder and the controller store)."""
    if velocities is None:
        return np.zeros(n)
    v = np.asarray(velocities, dtype=np.float64)
    return np.where(np.isfinite(v), v, 0.0)


# -- commands ---------------------------------------------------------------------------------
def trajectory_msg(joint_names: Sequence[str], times: Sequence[float] | np.ndarray,
                   positions: Sequence[Sequence[float]] | np.ndarray,
                   stamp: Time | None = None) -> JointTrajectory:
    """A JointTrajectory with one point per row of ``positions`` at ``times`` (s from its start),
    starting at ``stamp`` (ros2_control: zero or none = on receipt)."""
    msg = JointTrajectory()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.joint_names = list(joint_names)
    msg.points = [JointTrajectoryPoint(positions=np.asarray(row, dtype=np.float64).tolist(),
                                       time_from_start=duration_msg(float(t)))
                  for t, row in zip(times, positions)]
    return msg


# -- images -----------------------------------------------------------------------------------
def image_to_rgb(msg: Image) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a ``sensor_msgs/Image``.

    Converts ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` (alpha dropped) and ``mono8`` (grey
    replicated); honours row padding (``step`` > width x channels).  Raises
    :class:`ImageConversionError` for any other encoding, or when height, width, step and the
    data length do not agree.
    """
    encoding = str(msg.encoding).lower()
    channels = SUPPORTED_ENCODINGS.get(encoding)
    if channels is None:
        raise ImageConversionError(
            f'unsupported image encoding {msg.encoding!r}; expected one of '
            f'{sorted(SUPPORTED_ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'{msg.encoding} image has an empty size {width}x{height}')
    row = width * channels
    if step < row:
        raise ImageConversionError(
            f'{msg.encoding} image {width}x{height}: step {step} is smaller than '
            f'width x {channels} channels = {row} bytes')
    data = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.empty(0, np.uint8)
    if data.size != step * height:
        raise ImageConversionError(
            f'{msg.encoding} image {width}x{height} with step {step} needs {step * height} bytes, '
            f'got {data.size}')
    pixels = data.reshape(height, step)[:, :row].reshape(height, width, channels)
    if encoding == 'rgb8':
        return pixels.copy()
    if encoding == 'bgr8':
        return pixels[..., ::-1].copy()
    if encoding == 'rgba8':
        return pixels[..., :3].copy()
    if encoding == 'bgra8':
        return pixels[..., 2::-1].copy()
    return np.repeat(pixels, 3, axis=2)  # mono8


def rgb_to_image_msg(array: np.ndarray, stamp: Time | None = None, frame_id: str = '') -> Image:
    """A ``sensor_msgs/Image`` (rgb8, unpadded) from an (H, W, 3) uint8 array."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageConversionError(f'expected an (H, W, 3) uint8 RGB array, got {arr.dtype} {arr.shape}')
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(arr).tobytes()
    return msg
