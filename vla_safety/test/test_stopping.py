"""The controlled stop without ROS: where it starts, its braking profile, the one-point hold."""
import numpy as np

from vla_safety.rules import fill_velocities
from vla_safety.stopping import measured_now, path_velocity, stop_path, stop_trajectory

LOWER, UPPER = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
VMAX, AMAX, DT = np.array([2.0, 2.0]), np.array([10.0, 10.0]), 1.0 / 30.0


def test_a_moving_joint_brakes_within_the_acceleration_and_ends_inside_the_bounds():
    times, points = stop_trajectory(np.array([0.0, 0.8]), np.array([1.5, 1.5]), LOWER, UPPER,
                                    VMAX, AMAX, DT)
    np.testing.assert_allclose(times, DT * np.arange(1, len(times) + 1))
    path = np.vstack([[0.0, 0.8], points])
    speed = np.diff(path, axis=0) / DT
    assert np.all(np.abs(np.diff(np.vstack([[1.5, 1.5], speed]), axis=0)) <= AMAX * DT + 1e-6)
    braking = 1.5 ** 2 / 20 + 1.5 * DT / 2  # v^2 / 2a + v dt / 2
    np.testing.assert_allclose(points[-1], [braking, 0.8 + braking])
    # a joint that cannot stop before its bound is held at the bound
    _, points = stop_trajectory(np.array([0.95, 0.0]), np.array([1.5, 0.0]), LOWER, UPPER,
                                VMAX, AMAX, DT)
    np.testing.assert_allclose(points[-1], [1.0, 0.0])
    assert np.all(points <= UPPER + 1e-12)


def test_a_robot_at_rest_inside_the_bounds_gets_one_hold_point():
    times, points = stop_path(np.array([0.2, -0.3]), np.zeros(2), LOWER, UPPER, VMAX, AMAX, DT,
                              hold_time=0.05)
    np.testing.assert_allclose(times, [0.05])
    np.testing.assert_allclose(points, [[0.2, -0.3]])


def test_the_measurement_moves_on_but_never_past_the_command():
    q, v = np.array([0.0, 0.0]), np.array([1.0, -1.0])
    np.testing.assert_allclose(measured_now(q, v, 0.02, VMAX, None), [0.02, -0.02])
    np.testing.assert_allclose(measured_now(q, v, 0.02, VMAX, np.array([0.01, 0.05])), [0.01, 0.0])
    np.testing.assert_allclose(measured_now(q, None, 0.02, VMAX, None), q)
    np.testing.assert_allclose(measured_now(q, np.array([9.0, 0.0]), 0.1, VMAX, None), [0.2, 0.0])


def test_path_velocity_and_velocity_filling():
    start, times, points = np.zeros(2), np.array([1.0]), np.array([[1.0, -2.0]])
    np.testing.assert_allclose(path_velocity(start, times, points, 0.5), [1.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(path_velocity(start, times, points, 2.0), [0.0, 0.0])
    q = np.zeros(2)
    np.testing.assert_allclose(fill_velocities(None, None, q), [0.0, 0.0])
    np.testing.assert_allclose(fill_velocities(np.array([np.nan, 0.3]), np.array([0.1, 0.2]), q),
                               [0.1, 0.3])
