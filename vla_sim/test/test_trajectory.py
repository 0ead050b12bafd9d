import numpy as np
import pytest

from vla_sim.trajectory import TrajectoryError, validate_trajectory

JOINTS = ['a', 'b', 'c']
LOW = np.array([-1.0, -1.0, 0.0])
HIGH = np.array([1.0, 1.0, 0.08])
START = np.zeros(3)


def make(names=JOINTS, points=((0.5, 0.5, 0.04),), times=(1.0,), clip=True):
    return validate_trajectory(names, points, times, JOINTS, LOW, HIGH, clip, START, 10.0)


def test_interpolates_from_start_over_time_from_start_then_holds():
    traj = make(points=((0.5, -0.5, 0.04), (1.0, 0.0, 0.08)), times=(1.0, 2.0))
    np.testing.assert_allclose(traj.sample(10.0), [0, 0, 0])
    np.testing.assert_allclose(traj.sample(10.5), [0.25, -0.25, 0.02])
    np.testing.assert_allclose(traj.sample(11.5), [0.75, -0.25, 0.06])
    np.testing.assert_allclose(traj.sample(20.0), [1.0, 0.0, 0.08])


def test_reorders_joints_to_robot_order():
    traj = make(names=['c', 'a', 'b'], points=((0.04, 0.1, 0.2),))
    np.testing.assert_allclose(traj.positions[0], [0.1, 0.2, 0.04])


@pytest.mark.parametrize('kwargs, fault', [
    ({'names': ['a', 'b', 'x']}, 'unknown joint'),
    ({'names': ['a', 'b'], 'points': ((0.1, 0.2),)}, 'missing joint'),
    ({'points': ((0.1, 0.2),)}, 'has 2 positions for 3 joints'),
    ({'points': ((float('nan'), 0.0, 0.0),)}, "non-finite target(s) for ['a']"),
    ({'points': ((0.0, float('inf'), 0.0),)}, "non-finite target(s) for ['b']"),
    ({'points': ((0, 0, 0), (0, 0, 0)), 'times': (1.0, 1.0)}, 'must increase'),
    ({'points': ()}, 'no points'),
    ({'points': ((2.0, 0.0, 0.0),), 'clip': False}, "outside the joint bounds for ['a']"),
])
def test_bad_trajectories_name_the_fault(kwargs, fault):
    with pytest.raises(TrajectoryError) as err:
        make(**kwargs)
    assert fault in str(err.value)


def test_out_of_range_targets_are_clipped_when_asked():
    traj = make(points=((2.0, -3.0, 0.1),))
    assert traj.clipped
    np.testing.assert_allclose(traj.positions[0], [1.0, -1.0, 0.08])
