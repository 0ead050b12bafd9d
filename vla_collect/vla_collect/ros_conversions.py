"""ROS message <-> numpy conversions shared by the recorder, the controller and the tools.

Dependency-light on purpose (numpy and message types only; no cv_bridge, whose PyPI
release is ROS 1 code that fails on NumPy 2).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

#: encodings image_to_rgb converts, with their channel count
SUPPORTED_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


class ImageConversionError(ValueError):
    """An image that cannot be turned into RGB; the message names the encoding or size fault."""


class MissingJointError(ValueError):
    """A message lacks joints the robot is configured with; the message names them."""


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
    """A ``sensor_msgs/Image`` (rgb8) from an (H, W, 3) uint8 array."""
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


def _index(names: Sequence[str], wanted: Sequence[str], what: str) -> list[int]:
    lookup = {str(n): i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in lookup]
    if missing:
        raise MissingJointError(f'{what} lacks joint(s) {missing}; it names {list(names)}, '
                                f'the robot is configured with {list(wanted)}')
    return [lookup[n] for n in wanted]


def joint_state_to_arrays(msg: JointState, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(positions, velocities) as float64 arrays in ``joint_names`` order.

    Raises :class:`MissingJointError` naming every configured joint the message lacks (a
    position is never zero-filled), and ValueError when ``position`` does not match ``name``
    or a position is not finite.  An empty ``velocity`` (drivers may leave it out) gives zero
    velocities, and a NaN velocity (drivers use it for "unknown") reads as 0: velocity is the
    only field that is ever filled in.  A ``velocity`` of the wrong length is an error.
    """
    index = _index(msg.name, joint_names, 'JointState')
    if len(msg.position) != len(msg.name):
        raise ValueError(f'JointState has {len(msg.name)} names but {len(msg.position)} positions')
    position = np.asarray(msg.position, dtype=np.float64)[index]
    if not np.all(np.isfinite(position)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(position))]
        raise ValueError(f'JointState has non-finite positions for {bad}')
    if len(msg.velocity) == 0:
        velocity = np.zeros(len(joint_names))
    elif len(msg.velocity) != len(msg.name):
        raise ValueError(f'JointState has {len(msg.name)} names but {len(msg.velocity)} velocities')
    else:
        velocity = np.asarray(msg.velocity, dtype=np.float64)[index]
        velocity = np.where(np.isfinite(velocity), velocity, 0.0)
    return position, velocity


def trajectory_to_action(msg: JointTrajectory, joint_names: Sequence[str]) -> np.ndarray:
    """The command a trajectory sends: its first point's positions in ``joint_names`` order.

    Raises :class:`MissingJointError` for a joint the trajectory does not command and ValueError
    for a trajectory with no points, a point whose length differs from ``joint_names`` of the
    message, or non-finite positions.
    """
    if not msg.points:
        raise ValueError('JointTrajectory has no points')
    index = _index(msg.joint_names, joint_names, 'JointTrajectory')
    positions = msg.points[0].positions
    if len(positions) != len(msg.joint_names):
        raise ValueError(f'JointTrajectory point 0 has {len(positions)} positions for '
                         f'{len(msg.joint_names)} joints')
    action = np.asarray(positions, dtype=np.float64)[index]
    if not np.all(np.isfinite(action)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(action))]
        raise ValueError(f'JointTrajectory has non-finite positions for {bad}')
    return action
