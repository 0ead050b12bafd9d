"""Image / JointState / JointTrajectory conversions on real message objects."""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_collect.ros_conversions import (
    ImageConversionError, MissingJointError, image_to_rgb, joint_state_to_arrays, rgb_to_image_msg,
    trajectory_to_action)

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)


def image(encoding: str, pixels: np.ndarray, pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    data = np.hstack([rows, np.full((h, pad), 255, np.uint8)]) if pad else rows
    return Image(height=h, width=w, encoding=encoding, step=data.shape[1], data=data.tobytes())


def test_rgb_round_trip_and_stamp():
    msg = rgb_to_image_msg(RGB, Time(sec=3, nanosec=5), 'cam')
    assert (msg.encoding, msg.step, msg.header.frame_id, msg.header.stamp.sec) == ('rgb8', 15, 'cam', 3)
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize('encoding, pixels', [
    ('bgr8', RGB[..., ::-1]),
    ('rgba8', np.concatenate([RGB, np.full((4, 5, 1), 7, np.uint8)], axis=2)),
    ('bgra8', np.concatenate([RGB[..., ::-1], np.full((4, 5, 1), 7, np.uint8)], axis=2)),
])
def test_colour_encodings_are_converted(encoding, pixels):
    np.testing.assert_array_equal(image_to_rgb(image(encoding, pixels)), RGB)
    np.testing.assert_array_equal(image_to_rgb(image(encoding, pixels, pad=3)), RGB)


def test_mono_is_replicated_and_padding_honoured():
    grey = RGB[..., 0]
    out = image_to_rgb(image('mono8', grey[..., None], pad=2))
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 1], grey)


def test_bad_images_name_the_fault():
    with pytest.raises(ImageConversionError, match="unsupported image encoding '16UC1'"):
        image_to_rgb(Image(height=2, width=2, encoding='16UC1', step=4, data=bytes(8)))
    with pytest.raises(ImageConversionError, match='needs 60 bytes, got 59'):
        image_to_rgb(Image(height=4, width=5, encoding='rgb8', step=15, data=bytes(59)))
    with pytest.raises(ImageConversionError, match='step 10 is smaller'):
        image_to_rgb(Image(height=4, width=5, encoding='rgb8', step=10, data=bytes(40)))
    with pytest.raises(ImageConversionError, match='empty size'):
        image_to_rgb(Image(height=0, width=5, encoding='rgb8', step=15, data=b''))
    with pytest.raises(ImageConversionError, match='uint8 RGB'):
        rgb_to_image_msg(np.zeros((4, 5), np.uint8))


def test_joint_state_reordered_and_missing_joints_reported():
    msg = JointState(name=['b', 'a', 'extra'], position=[2.0, 1.0, 9.0], velocity=[0.2, 0.1, 0.0])
    pos, vel = joint_state_to_arrays(msg, ['a', 'b'])
    np.testing.assert_array_equal(pos, [1.0, 2.0])
    np.testing.assert_array_equal(vel, [0.1, 0.2])
    pos, vel = joint_state_to_arrays(JointState(name=['a', 'b'], position=[1.0, 2.0]), ['a', 'b'])
    np.testing.assert_array_equal(vel, [0.0, 0.0])
    with pytest.raises(MissingJointError, match=r"lacks joint\(s\) \['gripper'\]"):
        joint_state_to_arrays(msg, ['a', 'gripper'])
    with pytest.raises(ValueError, match='3 names but 2 positions'):
        joint_state_to_arrays(JointState(name=['a', 'b', 'c'], position=[1.0, 2.0]), ['a'])
    with pytest.raises(ValueError, match=r"non-finite positions for \['b'\]"):
        joint_state_to_arrays(JointState(name=['a', 'b'], position=[1.0, float('nan')]), ['a', 'b'])


def test_trajectory_first_point_in_robot_order():
    msg = JointTrajectory(joint_names=['b', 'a'], points=[
        JointTrajectoryPoint(positions=[2.0, 1.0], time_from_start=Duration(nanosec=33_000_000)),
        JointTrajectoryPoint(positions=[5.0, 5.0], time_from_start=Duration(sec=1))])
    np.testing.assert_array_equal(trajectory_to_action(msg, ['a', 'b']), [1.0, 2.0])
    with pytest.raises(MissingJointError, match='gripper'):
        trajectory_to_action(msg, ['a', 'gripper'])
    with pytest.raises(ValueError, match='no points'):
        trajectory_to_action(JointTrajectory(joint_names=['a']), ['a'])
    with pytest.raises(ValueError, match='1 positions for 2 joints'):
        trajectory_to_action(JointTrajectory(joint_names=['a', 'b'], points=[
            JointTrajectoryPoint(positions=[1.0])]), ['a', 'b'])
