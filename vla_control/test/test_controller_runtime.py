import math

import numpy as np

from vla_control.lockstep import LockstepTicks
from vla_control.runtime import (ActionGuard, ControlLoop, EventRate, Inputs, RateMeter, Snapshot,
                                 check_image_size, hold_reason)
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


class QueuePolicy:
    """A stand-in VLAPolicy with an action queue: chunks of 8 actions, each chunk from the
    observation it was predicted on (its joint positions + 0.01 * step)."""

    def __init__(self, fail=False) -> None:
        self.queue, self.resets, self.fail, self.predicted_chunk = [], 0, fail, False
        self.nan = False  # the next actions are NaN

    def reset(self) -> None:
        self.queue, self.resets = [], self.resets + 1

    def select_action(self, obs):
        if self.fail:
            raise RuntimeError('out of memory')
        self.predicted_chunk = not self.queue
        if not self.queue:
            self.queue = [np.asarray(obs['joint_positions']) + 0.01 * (i + 1) for i in range(8)]
        action = self.queue.pop(0)
        return action * math.nan if self.nan else action


def _act(loop, now, q, **kw):
    tick = inputs(now=now, image_time=now, state_time=now, **kw)
    return loop.decide(tick, hold_reason(tick, 0.25, 0.3), {'joint_positions': q}, q)


def test_a_stall_drops_the_actions_queued_before_it():
    policy = QueuePolicy()
    loop = ControlLoop(policy, LIMITS, period=0.1, max_age=0.25)
    q = np.array([0.0, 0.02])
    first = _act(loop, 10.0, q)
    assert first.predicted and first.log is None and np.allclose(first.command, [0.01, 0.03])
    assert not _act(loop, 10.1, q).predicted and len(policy.queue) == 6
    # the camera goes stale: hold at the measured position, and the queue is dropped
    stale = inputs(now=10.5, image_time=10.1, state_time=10.5)
    held = loop.decide(stale, hold_reason(stale, 0.25, 0.3), None, q)
    assert 'camera image is stale' in held.hold and held.log[0] == 'warning'
    assert np.array_equal(held.command, q) and 'measured position' in held.log[1]
    assert policy.queue == [] and policy.resets == 1
    # still stale next tick: no second hold command, no second reset
    again = loop.decide(stale, hold_reason(stale, 0.25, 0.3), None, q)
    assert again.command is None and again.log is None and policy.resets == 1
    # back: the first action comes from a chunk predicted on the new observation
    q2 = np.array([0.5, 0.04])
    back = _act(loop, 11.0, q2)
    assert back.predicted and back.log == ('info', "acting on 'pick'")
    np.testing.assert_allclose(back.command, [0.51, 0.05])


def test_a_failing_policy_holds_and_drops_its_queue():
    policy = QueuePolicy()
    loop = ControlLoop(policy, LIMITS, period=0.1, max_age=0.25)
    q = np.array([0.0, 0.02])
    _act(loop, 10.0, q)
    policy.fail = True
    failed = _act(loop, 10.1, q)
    assert failed.fault == ('inference error', 'policy failed: out of memory')
    assert 'policy failed' in failed.hold and np.array_equal(failed.command, q)
    assert policy.queue == [] and policy.resets == 1
    # a non-finite action is refused the same way
    policy.fail = False
    loop2 = ControlLoop(QueuePolicy(), LIMITS, period=0.1, max_age=0.25)
    _act(loop2, 10.0, q)
    loop2.policy.nan = True
    bad = _act(loop2, 10.1, q)
    assert bad.fault[0] == 'bad model output' and loop2.policy.queue == []


def test_a_stale_joint_state_holds_at_the_last_commanded_target_not_the_stale_position():
    loop = ControlLoop(QueuePolicy(), LIMITS, period=0.1, max_age=0.25)
    q = np.array([0.0, 0.02])
    for k in range(3):
        last = _act(loop, 10.0 + 0.1 * k, q).command  # the targets move on, q is frozen
    stale = inputs(now=10.6, image_time=10.6, state_time=10.2)
    held = loop.decide(stale, hold_reason(stale, 0.25, 0.3), None, q)
    assert 'joint state is stale' in held.hold
    assert np.array_equal(held.command, last) and not np.array_equal(held.command, q)
    assert 'last commanded target' in held.log[1]
    # never acted and no fresh state: nothing is commanded
    fresh = ControlLoop(QueuePolicy(), LIMITS, period=0.1, max_age=0.25)
    assert fresh.hold_target(stale, q)[0] is None
    # during an emergency stop the gate holds: the controller commands nothing
    stopped = inputs(estop='joint limit')
    assert loop.decide(stopped, hold_reason(stopped, 0.25, 0.3), None, q).command is None


def test_overruns_per_minute():
    rate = EventRate(60.0)
    assert rate.per_minute(0.0) == 0.0
    for t in (1.0, 2.0, 3.0):
        rate.add(t)
    assert rate.per_minute(30.0) == 6.0  # 3 in the 30 s the node has run
    assert rate.per_minute(61.5) == 2.0  # the first one left the window
    assert rate.per_minute(200.0) == 0.0
    rate.add(10.0)  # the clock jumped back (sim time restarted): start over
    assert rate.per_minute(10.0) == 60.0


def test_a_continuing_hold_keeps_its_target_and_retakes_it_after_the_arm_was_moved():
    """What a lock-step controller re-sends every tick of a hold (TickResult.standing)."""
    loop = ControlLoop(QueuePolicy(), LIMITS, period=0.1, max_age=0.25)
    q = np.array([0.2, 0.02])
    # never acted, no command: the hold stands where the arm is, and stays there while the
    # measured position sags a little (never chasing it)
    idle = inputs(instruction='')
    first = loop.decide(idle, hold_reason(idle, 0.25, 0.3), None, q)
    assert first.command is None and np.array_equal(first.standing, q)
    sagged = loop.decide(idle, hold_reason(idle, 0.25, 0.3), None, q - 0.01)
    assert np.array_equal(sagged.standing, q)
    # the arm was moved (a simulator reset): the hold is re-taken where it now is
    home = np.array([-0.6, 0.0])
    moved = loop.decide(idle, hold_reason(idle, 0.25, 0.3), None, home)
    assert np.array_equal(moved.standing, home)
    # acting, then settling on a new command: the hold stands at the measured position
    _act(loop, 10.0, home)
    settle = inputs(now=10.1, image_time=10.1, state_time=10.1, command_time=10.05)
    held = loop.decide(settle, hold_reason(settle, 0.25, 0.3), None, home)
    assert 'settling' in held.hold and np.array_equal(held.command, home)
    assert np.array_equal(held.standing, home)
    # an emergency stop: the gate holds, the controller stands nowhere
    stopped = inputs(estop='joint limit')
    assert loop.decide(stopped, hold_reason(stopped, 0.25, 0.3), None, home).standing is None


# -- ControlLoop.step over simulated time ----------------------------------------------------
IMAGE = np.zeros((4, 6, 3), np.uint8)


class World:
    """Simulated inputs at 10 Hz: the camera and joint state arrive every tick unless stopped;
    what a controller node would hold in its caches."""

    def __init__(self, cameras=()) -> None:
        self.t, self.q = 0.0, np.array([0.0, 0.02])
        self.instruction, self.command_time, self.changed, self.estop = '', None, False, ''
        self.image_time = self.state_time = None
        self.extra = {}
        self.camera_on, self.state_on, self.cameras = True, True, list(cameras)

    def command(self, text):
        self.instruction, self.command_time, self.changed = text, self.t, True

    def tick(self, loop, **kw):
        self.t = round(self.t + 0.1, 6)
        if self.camera_on:
            self.image_time = self.t
            self.extra.update({c: (IMAGE + 1, self.t) for c in self.cameras})
        if self.state_on:
            self.state_time = self.t
        snap = Snapshot(self.t, self.instruction, self.command_time, self.changed, self.estop,
                        IMAGE if self.image_time is not None else None, self.image_time,
                        dict(self.extra), self.q, np.zeros(2), self.state_time, **kw)
        self.changed = False
        return loop.step(snap)


def test_step_settles_on_a_new_command_then_acts_on_the_newest_observation():
    policy = QueuePolicy()
    loop = ControlLoop(policy, LIMITS, period=0.1, max_age=0.25, settle_time=0.3)
    world = World()
    first = world.tick(loop)
    assert first.hold.startswith('no command') and first.command is None and loop.ticks == 1
    world.command('pick')
    results = [world.tick(loop) for _ in range(5)]
    assert results[0].new_command and not results[1].new_command
    # the command came at 0.1 s: settling until 0.4 s
    assert [r.hold.startswith('new command: settling') for r in results] == [True] * 2 + [False] * 3
    acting = results[2]
    assert acting.log == ('info', "acting on 'pick'") and acting.predicted
    assert acting.obs['instruction'] == 'pick' and acting.obs['image'] is IMAGE
    np.testing.assert_allclose(acting.command, [0.01, 0.03])
    assert loop.actions == 3 and loop.ticks == 6


def test_step_holds_on_stale_input_and_during_an_emergency_stop():
    policy = QueuePolicy()
    loop = ControlLoop(policy, LIMITS, period=0.1, max_age=0.25, settle_time=0.0)
    world = World()
    world.command('pick')
    assert world.tick(loop).command is not None
    world.camera_on = False
    ticks = [world.tick(loop) for _ in range(3)]
    assert [t.hold for t in ticks[:2]] == ['', '']  # still within max_observation_age
    assert 'camera image is stale (0.30 s old' in ticks[2].hold
    assert np.array_equal(ticks[2].command, world.q) and policy.queue == []
    world.camera_on = True
    assert world.tick(loop).hold == ''
    world.estop = 'joint limit'
    stopped = world.tick(loop)
    assert stopped.hold == 'emergency stop: joint limit' and stopped.command is None


def test_step_waits_for_every_camera_and_the_oldest_decides():
    loop = ControlLoop(QueuePolicy(), LIMITS, period=0.1, max_age=0.25, settle_time=0.0,
                       cameras=['wrist'])
    world = World(cameras=['wrist'])
    world.command('pick')
    world.tick(loop)
    assert loop.hold == ''
    world.cameras, world.extra = [], {}
    missing = world.tick(loop)
    assert missing.hold == 'no image yet from the wrist camera (/camera/wrist/image_raw)'
    world.extra = {'wrist': (IMAGE, world.t - 0.5)}  # the wrist image is old
    assert 'camera image is stale (0.60 s old' in world.tick(loop).hold
    world.extra = {'wrist': (IMAGE + 7, world.t + 0.1)}
    acted = world.tick(loop)
    assert acted.hold == '' and acted.obs['image_wrist'][0, 0, 0] == 7


def test_step_in_lockstep_answers_every_tick_and_the_error_state_holds():
    loop = ControlLoop(QueuePolicy(), LIMITS, period=0.1, max_age=0.25, settle_time=0.0)
    world = World()
    world.state_on = world.camera_on = False  # arrival times lag: lock-step uses the stamp
    world.image_time = world.state_time = -5.0
    idle = [world.tick(loop, stamp=world.t + 0.1) for _ in range(3)]
    assert all(r.hold.startswith('no command') for r in idle)
    assert all(np.array_equal(r.command, world.q) for r in idle)  # each tick is answered
    world.command('pick')
    acted = world.tick(loop, stamp=world.t + 0.1)
    assert acted.hold == '' and acted.predicted
    broken = world.tick(loop, stamp=world.t + 0.1, error='checkpoint not usable')
    assert broken.hold == 'checkpoint not usable' and broken.command is not None
    assert world.tick(loop).hold.startswith('camera image is stale')  # no stamp: arrival times


def test_a_lockstep_tick_is_due_once_when_all_its_inputs_carry_its_stamp():
    ticks = LockstepTicks(('image', 'joint_state', 'image_wrist'))
    assert not ticks.observed('image', 0.1) and not ticks.observed('joint_state', 0.1)
    assert ticks.due is None
    assert ticks.observed('image_wrist', 0.1) and ticks.due == 0.1
    assert not ticks.observed('image', 0.1)  # the same tick again: taken once
    assert not ticks.observed('image', 0.2) and not ticks.observed('joint_state', 0.2)
    assert not ticks.observed('image_wrist', 0.1 + 1e-3)  # a stamp of another tick
    assert ticks.observed('image_wrist', 0.2) and ticks.due == 0.2
    ticks.observed('image', 0.15)
    ticks.observed('joint_state', 0.15)
    assert not ticks.observed('image_wrist', 0.15) and ticks.due == 0.2  # older than the last


def test_a_lockstep_tick_waits_for_the_node_clock_to_reach_its_stamp():
    import threading
    ticks = LockstepTicks(('image',))
    stopping = threading.Event()
    assert ticks.await_due(lambda: 0.0, 1.0, stopping) == (None, '')  # no tick due yet
    ticks.observed('image', 2.0)
    clock = iter([1.0, 1.5, 2.0])
    assert ticks.await_due(lambda: next(clock), 1.0, stopping, poll=0.0) == (2.0, '')
    stamp, why = ticks.await_due(lambda: 1.0, 0.01, stopping, poll=0.001)
    assert stamp is None and 'did not reach the tick stamped 2.000 s' in why
    stopping.set()
    assert ticks.await_due(lambda: 1.0, 10.0, stopping) == (None, '')  # shutting down: no fault


def test_plan_points_follow_the_command_guarded_like_it():
    """With ``plan_points`` the policy's upcoming actions (``upcoming(n)``) follow the command,
    clipped to the bounds and within one tick's motion of the point before; a policy without
    a plan (or plan_points 0) gives one point."""
    limits = SafetyLimits.from_values(['a', 'b'], [-1.0, -1.0], [1.0, 1.0], [3.0, 3.0])

    class Planning:
        predicted_chunk = True

        def __init__(self):
            self.asked = []

        def reset(self):
            pass

        def select_action(self, obs):
            return np.array([0.05, 0.0])

        def upcoming(self, n):
            self.asked.append(n)
            return np.array([[0.1, 0.0], [0.2, 5.0], [0.3, np.nan], [0.4, 0.0]])[:n]

    policy = Planning()
    loop = ControlLoop(policy, limits, period=0.1, max_age=1.0, settle_time=0.0, plan_points=4)
    tick = Inputs(1.0, 'go', 0.0, 1.0, 1.0, '')
    result = loop.decide(tick, None, {'joint_positions': np.zeros(2)}, np.zeros(2))
    np.testing.assert_allclose(result.command, [0.05, 0.0])
    # the second point: b clipped to 1.0, then 0.3 (one tick at 3 rad/s) from the point before;
    # the plan stops at the non-finite action
    np.testing.assert_allclose(result.plan, [[0.1, 0.0], [0.2, 0.3]])
    assert policy.asked == [4]
    np.testing.assert_allclose(loop.guard.previous, [0.05, 0.0])  # the plan is not commanded yet
    one = ControlLoop(policy, limits, period=0.1, max_age=1.0, settle_time=0.0)
    assert one.decide(tick, None, {'joint_positions': np.zeros(2)}, np.zeros(2)).plan is None
    assert policy.asked == [4]
