"""Message conversions on real message objects: stamps and durations, trajectories, images."""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import Image, JointState

from vla_common.messages import (ImageConversionError, JointStateError, MissingJointError,
                                 duration_msg, image_to_rgb, joint_index, joint_state_arrays,
                                 known_velocities, parse_joint_state, rgb_to_image_msg, time_msg,
                                 to_seconds, trajectory_msg)


@pytest.mark.parametrize('seconds, sec, nanosec', [
    (0.0, 0, 0),
    (1.5, 1, 500_000_000),
    (1.0 / 30.0, 0, 33_333_333),
    (2.9999999999, 3, 0),          # rounds up to the next second, never wraps back to 2.0
    (1_000_000.25, 1_000_000, 250_000_000),
    (-0.5, -1, 500_000_000),       # ROS's convention: nanosec is always in [0, 1e9)
])
def test_seconds_to_time_and_duration_and_back(seconds, sec, nanosec):
    for build, kind in ((time_msg, Time), (duration_msg, Duration)):
        msg = build(seconds)
        assert isinstance(msg, kind) and (msg.sec, msg.nanosec) == (sec, nanosec)
        assert to_seconds(msg) == pytest.approx(seconds, abs=1e-9)
    assert to_seconds(Time(sec=100, nanosec=int(13 * 1e9 / 30))) == pytest.approx(100 + 13 / 30)


def test_trajectory_msg_has_one_point_per_row_at_its_time():
    positions = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32)
    msg = trajectory_msg(('a', 'b'), np.array([1.0 / 30.0, 0.5]), positions, Time(sec=7, nanosec=9))
    assert list(msg.joint_names) == ['a', 'b'] and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (7, 9)
    assert [to_seconds(p.time_from_start) for p in msg.points] == pytest.approx([1.0 / 30.0, 0.5])
    assert msg.points[0].time_from_start.nanosec == 33_333_333
    np.testing.assert_array_equal([list(p.positions) for p in msg.points], positions.astype(np.float64))
    unstamped = trajectory_msg(['a'], [0.1], [[1.0]])
    assert (unstamped.header.stamp.sec, unstamped.header.stamp.nanosec) == (0, 0)  # ros2_control: on receipt


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


# -- joint states -----------------------------------------------------------------------------
ROBOT = ['a', 'b', 'gripper']


def test_joint_state_is_read_in_robot_order_and_extra_joints_are_ignored():
    msg = JointState(name=['finger', 'gripper', 'b', 'a'], position=[9.0, 0.04, 0.2, 0.1],
                     velocity=[9.0, 0.0, -0.1, 0.3])
    q, v = parse_joint_state(msg, ROBOT)
    np.testing.assert_array_equal(q, [0.1, 0.2, 0.04])
    np.testing.assert_array_equal(v, [0.3, -0.1, 0.0])
    assert q.dtype == np.float64 and v.dtype == np.float64


def test_absent_velocities_are_none_and_zeros_only_when_asked():
    q, v = parse_joint_state(JointState(name=ROBOT, position=[0.0, 1.0, 0.02]), ROBOT)
    assert v is None
    np.testing.assert_array_equal(known_velocities(v, 3), [0.0, 0.0, 0.0])
    q, v = joint_state_arrays(ROBOT, [0.0, 0.0, 0.0], [0.5, float('nan'), -0.1], ROBOT)
    assert np.isnan(v[1])  # as measured: "unknown" for the safety layer to estimate
    np.testing.assert_array_equal(known_velocities(v, 3), [0.5, 0.0, -0.1])


def test_a_missing_joint_is_named_with_the_expected_names():
    with pytest.raises(MissingJointError) as err:
        parse_joint_state(JointState(name=['b', 'a'], position=[0.0, 0.0]), ROBOT)
    text = str(err.value)
    assert "missing joint(s) ['gripper']" in text and "expected all of ['a', 'b', 'gripper']" in text
    assert "it names ['b', 'a']" in text
    assert err.value.kind == 'joint state missing joints' and isinstance(err.value, ValueError)
    with pytest.raises(MissingJointError, match=r"JointTrajectory is missing joint\(s\) \['b'\]"):
        joint_index(['a'], ['a', 'b'], 'JointTrajectory')
    assert joint_index(['b', 'a', 'b'], ['a', 'b']) == [1, 0]  # the first of repeated names


@pytest.mark.parametrize('names, positions, velocities, match', [
    (ROBOT, [0.0, 0.0], [], '2 positions for 3 names'),
    (ROBOT, [0.0, 0.0, 0.0], [0.0], '1 velocities for 3 names'),
    (ROBOT, [0.0, float('nan'), 0.0], [], r"non-finite positions for \['b'\]"),
    (ROBOT, [0.0, 0.0, float('inf')], [], r"non-finite positions for \['gripper'\]"),
])
def test_malformed_joint_states_are_errors(names, positions, velocities, match):
    with pytest.raises(JointStateError, match=match) as err:
        joint_state_arrays(names, positions, velocities, ROBOT)
    assert err.value.kind == 'malformed joint state'


def test_non_finite_positions_pass_when_the_caller_judges_them():
    q, v = joint_state_arrays(ROBOT, [0.0, float('nan'), 0.0], [], ROBOT, require_finite=False)
    assert np.isnan(q[1]) and v is None
