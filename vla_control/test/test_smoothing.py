"""Acceleration-limited command smoothing (vla_control.smoothing) and the guard that uses it."""
import numpy as np
import pytest

from vla_control.async_policy import PlanPending
from vla_control.runtime import ActionGuard, ControlLoop, Snapshot
from vla_control.smoothing import MotionSmoother, per_joint_limit
from vla_safety.rules import SafetyLimits

DT = 1.0 / 30.0
LIMITS = SafetyLimits.from_values(['a', 'b', 'g'], [-3.0, -3.0, 0.0], [3.0, 3.0, 0.08],
                                  [2.0, 2.0, 0.5])
ACCEL = np.array([10.0, 10.0, 4.0])


def velocities(start, points):
    return np.diff(np.vstack([start, points]), axis=0) / DT


def test_a_path_within_the_limits_is_followed_exactly():
    smoother = MotionSmoother([2.0, 2.0], [10.0, 10.0], DT)
    t = np.arange(150) * DT
    # 0.5 Hz cosine of 0.3 rad from rest (peak 0.94 rad/s, 3 rad/s^2) and a 0.5 rad/s ramp
    # (which the smoother, starting at rest, catches up with first)
    targets = np.stack([0.3 * (1.0 - np.cos(np.pi * t)), 0.5 * t], axis=1)
    out = np.array([smoother.step(targets[0], target) for target in targets])
    np.testing.assert_allclose(out[10:], targets[10:], atol=1e-9)
    assert smoother.failures == 0


def test_a_jump_is_spread_within_the_acceleration_and_speed_without_overshoot():
    smoother = MotionSmoother([2.0], [10.0], DT)
    targets = np.zeros((60, 1))
    targets[5:] = 0.3  # one chunk says 0, the next 0.3 rad
    out = np.array([smoother.step(targets[0], target) for target in targets])
    v = velocities(targets[0], out)[:, 0]
    assert np.abs(np.diff(v)).max() <= 10.0 * DT + 1e-9
    assert np.abs(v).max() <= 2.0 + 1e-9
    assert out[:, 0].max() <= 0.3 + 1e-9  # no overshoot
    assert abs(out[-1, 0] - 0.3) < 1e-9  # and it gets there: bang-bang takes 2 sqrt(0.3/10) s
    assert np.argmax(out[:, 0] > 0.3 - 1e-6) <= 5 + int(np.ceil(2 * np.sqrt(0.3 / 10) / DT)) + 1


def test_noisy_targets_reach_the_robot_within_the_acceleration_limit():
    rng = np.random.default_rng(0)
    targets = np.cumsum(rng.normal(0.0, 0.03, (300, 3)), axis=0)
    targets[100:] += 0.4  # and two chunk handovers
    targets[200:] -= 0.7
    smoother = MotionSmoother([2.0, 2.0, 0.5], ACCEL, DT)
    out = np.array([smoother.step(targets[0], target) for target in targets])
    v = velocities(targets[0], out)
    assert np.all(np.abs(np.diff(v, axis=0)) <= ACCEL * DT + 1e-9)
    assert np.all(np.abs(v) <= [2.0 + 1e-9, 2.0 + 1e-9, 0.5 + 1e-9])


def test_preview_is_what_step_would_command_and_changes_nothing():
    smoother = MotionSmoother([2.0, 2.0], [10.0, 10.0], DT)
    for target in ([0.1, 0.0], [0.2, -0.1]):
        smoother.step(np.zeros(2), np.array(target))
    state = [x.copy() for x in smoother.state]
    upcoming = [np.array([0.5, -0.5]), np.array([0.6, -0.5]), np.array([0.6, -0.4])]
    preview = smoother.preview(np.zeros(2), upcoming)
    for x, y in zip(smoother.state, state):
        np.testing.assert_array_equal(x, y)
    stepped = [smoother.step(np.zeros(2), target) for target in upcoming]
    np.testing.assert_allclose(preview, stepped, atol=0)


def test_per_joint_limit_reads_one_value_or_one_per_joint():
    np.testing.assert_array_equal(per_joint_limit('max_acceleration', [10.0], 3), [10.0] * 3)
    np.testing.assert_array_equal(per_joint_limit('max_acceleration', [1.0, 2.0, 3.0], 3),
                                  [1.0, 2.0, 3.0])
    assert per_joint_limit('max_acceleration', [0.0], 3) is None
    assert per_joint_limit('max_acceleration', 0.0, 3) is None
    with pytest.raises(ValueError, match=r'one per joint \(3\), got \[1.0, 2.0\]'):
        per_joint_limit('max_acceleration', [1.0, 2.0], 3)
    with pytest.raises(ValueError, match='>= 0'):
        per_joint_limit('max_acceleration', [-1.0], 3)
    with pytest.raises(ValueError, match='0 for some joints'):
        per_joint_limit('max_acceleration', [10.0, 0.0, 4.0], 3)


def test_the_guard_smooths_a_chunk_handover_and_restarts_from_rest_after_a_reset():
    guard = ActionGuard(LIMITS, DT, ACCEL)
    measured = np.array([0.0, 0.0, 0.04])
    sent = [guard(np.array([0.0, 0.0, 0.04]), measured)[0] for _ in range(3)]
    sent += [guard(np.array([0.5, -0.5, 0.0]), measured)[0] for _ in range(30)]  # a jump
    v = velocities(measured, np.array(sent))
    assert np.all(np.abs(np.diff(v, axis=0)) <= ACCEL * DT + 1e-9)
    np.testing.assert_allclose(sent[-1], [0.5, -0.5, 0.0], atol=1e-9)
    # a plan preview continues the same motion
    plan = guard.plan(sent[-1], np.array([[0.6, -0.5, 0.0]] * 5))
    v_plan = velocities(sent[-1], plan)
    assert np.all(np.abs(np.diff(np.vstack([v[-1], v_plan]), axis=0)) <= ACCEL * DT + 1e-9)
    guard.reset()
    target, _ = guard(np.array([1.0, 1.0, 0.08]), np.array([0.2, 0.2, 0.04]))
    # from the measured position at rest: one tick of 10 rad/s^2 moves 0.5 * 10 * DT^2 at most
    assert np.all(np.abs(target - [0.2, 0.2, 0.04]) <= 0.5 * ACCEL * DT ** 2 + 1e-9)


def test_without_max_acceleration_the_guard_only_limits_speed():
    guard = ActionGuard(LIMITS, DT)
    assert guard.smoother is None
    target, _ = guard(np.array([1.0, 0.0, 0.04]), np.array([0.0, 0.0, 0.04]))
    np.testing.assert_allclose(target, [2.0 * DT, 0.0, 0.04])


class _Pending:
    """A policy whose plan runs out on tick 3 (asynchronous inference is late), then acts."""

    def __init__(self):
        self.calls = 0

    def select_action(self, obs):
        self.calls += 1
        if self.calls == 3:
            raise PlanPending('the plan ran out')
        return np.array([1.0, 1.0, 0.04])

    def reset(self):
        pass


def test_a_hold_while_the_plan_is_pending_restarts_the_smoothed_motion_from_rest():
    loop = ControlLoop(_Pending(), LIMITS, DT, max_age=0.25, settle_time=0.0,
                       max_acceleration=ACCEL)
    image = np.zeros((8, 8, 3), np.uint8)
    q = np.zeros(3)
    results = []
    for k in range(5):
        now = 10.0 + k * DT
        snap = Snapshot(now=now, instruction='go', command_time=0.0, image=image, image_time=now,
                        q=q, state_time=now)
        results.append(loop.step(snap))
    assert results[2].hold and not results[3].hold
    assert loop.guard.smoother.velocity is not None
    # tick 3 starts again at rest from the last target: at most half a tick of acceleration
    step = results[3].command - results[1].command
    assert np.all(np.abs(step) <= 0.5 * ACCEL * DT ** 2 + 1e-9)

