import math

import numpy as np

from vla_control.runtime import ActionGuard, Inputs, RateMeter, check_image_size, hold_reason
from vla_safety.rules import SafetyLimits

LIMITS = SafetyLimits.from_values(['a', 'b'], [-1.0, 0.0], [1.0, 0.08], [3.0, 0.3])


def inputs(**kw):
    base = dict(now=10.0, instruction='pick', command_time=5.0, image_time=9.95, state_time=9.99,
                estop='')
    base.update(kw)
    return Inputs(**base)


def test_hold_reasons_in_order_of_priority():
    assert hold_reason(inputs(), 0.25, 0.3) is None
    assert hold_reason(inputs(estop='joint limit', instruction=''), 0.25, 0.3).startswith('emergency stop')
    assert hold_reason(inputs(instruction=''), 0.25, 0.3).startswith('no command')
    assert hold_reason(inputs(image_time=None), 0.25, 0.3) == 'no camera image yet'
    assert hold_reason(inputs(state_time=None), 0.25, 0.3) == 'no joint state yet'
    assert 'camera image is stale (0.50 s old' in hold_reason(inputs(image_time=9.5), 0.25, 0.3)
    assert 'joint state is stale' in hold_reason(inputs(state_time=9.0), 0.25, 0.3)
    assert 'settling' in hold_reason(inputs(command_time=9.9), 0.25, 0.3)


def test_action_guard_refuses_non_finite_and_limits_the_step():
    guard = ActionGuard(LIMITS, period=0.1)
    target, why = guard(np.array([math.nan, 0.0]), np.zeros(2))
    assert target is None and "not finite for ['a']" in why
    target, why = guard(np.array([0.1]), np.zeros(2))
    assert target is None and '1 values' in why
    target, _ = guard(np.array([5.0, 0.05]), np.zeros(2))
    np.testing.assert_allclose(target, [0.3, 0.03])  # one tick at 3 rad/s and 0.3 m/s
    target, _ = guard(np.array([5.0, 0.05]), np.zeros(2))
    np.testing.assert_allclose(target, [0.6, 0.05])  # continues from its last target
    guard.reset()
    target, _ = guard(np.array([-5.0, -1.0]), np.full(2, 0.02))
    np.testing.assert_allclose(target, [-0.28, 0.0])  # clipped into the bounds, from measured


def test_rate_meter():
    meter = RateMeter(window=100)
    for i in range(31):
        meter.add(i / 30.0, 0.002 + 0.001 * (i == 30))
    p50, p99 = meter.percentiles_ms()
    assert abs(p50 - 2.0) < 1e-9 and 2.0 < p99 <= 3.0
    assert abs(meter.rate_hz() - 30.0) < 1e-6
    assert len(meter.take_pending()) == 31 and meter.take_pending() == []


def test_image_size_check_names_both_sides():
    assert check_image_size([], 224, 224) is None
    assert check_image_size([64, 64], 64, 64) is None
    assert check_image_size([64, 64], 224, 224) == ('camera images are 224x224 but the checkpoint '
                                                    'was trained on 64x64 images')
