"""ChunkStitcher and the latency-injected rollout, without ROS."""
import math

import numpy as np
import pytest

from vla_control.chunking import ChunkStitcher, LatencyModel, rollout_with_latency
from vla_control.smoothing import MotionSmoother

DT = 0.1


def ramp(start, k=8, step=1.0, dim=2):
    """A chunk whose action i is start + i * step in every dimension."""
    return np.array([[start + i * step] * dim for i in range(k)], dtype=np.float64)


def test_latency_mode_starts_a_late_chunk_at_the_action_due_now():
    s = ChunkStitcher('latency', DT, 2)
    assert s.action(0.0)[0] is None and 'no action chunk' in s.action(0.0)[1]
    # computed from the observation at t=0.0, arrives at t=0.3: actions 0..2 are in the past
    assert s.add(ramp(0.0), obs_time=0.0, now=0.3) is None
    np.testing.assert_allclose(s.action(0.3)[0], [3.0, 3.0])
    np.testing.assert_allclose(s.action(0.4)[0], [4.0, 4.0])
    assert s.remaining(0.4) == 4
    # the plan runs out: hold, with the reason
    action, why = s.action(0.8)
    assert action is None and 'ran out' in why


def test_queue_mode_serves_each_chunk_from_its_start_after_the_previous():
    s = ChunkStitcher('queue', DT, 2, n_action_steps=3)
    s.add(ramp(0.0), 0.0, 0.3)
    s.add(ramp(10.0), 0.1, 0.3)
    served = [s.action(0.3 + DT * i)[0][0] for i in range(6)]
    assert served == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]  # stale actions served late, in order
    assert s.action(1.0)[0] is None


def test_crossfade_hands_over_without_a_step():
    s = ChunkStitcher('crossfade', DT, 1, blend=4)
    s.add(ramp(0.0, k=16, dim=1), 0.0, 0.0)
    for i in range(3):
        s.action(DT * i)
    # a new chunk that disagrees by 5 arrives at t=0.3
    s.add(ramp(5.0, k=16, dim=1), 0.2, 0.3)
    out = [float(s.action(0.3 + DT * i)[0][0]) for i in range(6)]
    old = [3.0 + i for i in range(6)]
    new = [6.0 + i for i in range(6)]
    assert out[0] == pytest.approx(0.75 * old[0] + 0.25 * new[0])
    assert out[3:] == pytest.approx(new[3:])  # handed over after `blend` ticks
    steps = np.diff([2.0] + out)
    assert steps.max() < 3.0  # never the 4-unit jump of switching at once (1 + 3 disagreement)
    latency = ChunkStitcher('latency', DT, 1)
    latency.add(ramp(0.0, k=16, dim=1), 0.0, 0.0)
    latency.action(0.2)
    latency.add(ramp(5.0, k=16, dim=1), 0.2, 0.3)
    assert float(latency.action(0.3)[0][0]) == pytest.approx(6.0)  # the jump crossfade avoids


def test_ensemble_is_aligned_by_observation_time():
    s = ChunkStitcher('ensemble', DT, 1, decay=0.0)
    s.add(ramp(0.0, dim=1), 0.0, 0.1)
    s.add(ramp(1.0, dim=1), 0.2, 0.3)  # predicts 1.0 for t=0.2, i.e. 2.0 for t=0.3
    # at t=0.3 the old chunk says 3.0, the new one 2.0: equal weights -> 2.5
    assert float(s.action(0.3)[0][0]) == pytest.approx(2.5)


def test_bad_chunks_are_refused_with_the_reason():
    s = ChunkStitcher('latency', DT, 2, max_age=0.5)
    assert 'expected (K, 2)' in s.add(np.zeros((4, 3)), 0.0, 0.0)
    assert 'non-finite' in s.add(np.full((4, 2), math.nan), 0.0, 0.0)
    assert 'in the future' in s.add(np.zeros((4, 2)), 1.0, 0.0)
    assert 'old' in s.add(np.zeros((4, 2)), 0.0, 0.9)
    assert s.refused == 4 and s.action(0.9)[0] is None
    with pytest.raises(ValueError, match='stitching mode'):
        ChunkStitcher('smooth', DT, 2)


def test_latency_model_spikes_every_nth_inference():
    model = LatencyModel(base=0.05, spike=0.3, spike_every=3)
    assert [model.next() for _ in range(6)] == pytest.approx([0.05, 0.05, 0.35, 0.05, 0.05, 0.35])


class LineEnv:
    """A 1-joint 'robot' that must reach 1.0 within 40 ticks; the observation is its position."""

    def reset(self, task, seed):
        self.q, self.t = np.zeros(1), 0
        return {'joint_positions': self.q.copy()}

    def step(self, action):
        self.q = np.asarray(action, dtype=np.float64).copy()
        self.t += 1
        success = abs(self.q[0] - 1.0) < 1e-6
        return {'joint_positions': self.q.copy()}, float(success), success or self.t >= 40, {'success': success}


class StepPolicy:
    """Predicts a chunk moving 0.1 per tick from the observed position towards 1.0."""

    def reset(self):
        pass

    def predict_chunk(self, obs):
        q = float(obs['joint_positions'][0])
        return np.array([[min(1.0, q + 0.1 * (i + 1))] for i in range(8)])


@pytest.mark.parametrize('mode', ['latency', 'crossfade', 'ensemble'])
def test_latency_aware_stitching_keeps_moving_under_latency(mode):
    stitcher = ChunkStitcher(mode, DT, 1, decay=0.5)
    result = rollout_with_latency(LineEnv(), StepPolicy(), 't', 0, stitcher, LatencyModel(base=0.25))
    assert result['success'] and result['inferences'] > 1
    assert result['holds'] == 3  # only while the first chunk is on its way (3 ticks)


def test_the_latency_rollout_follows_its_plan_within_the_acceleration_of_a_smoother():
    """bench_async_latency --max-acceleration: the ROS-free rollout smooths as the controller."""
    def run(smoother):
        return rollout_with_latency(LineEnv(), StepPolicy(), 't', 0, ChunkStitcher('latency', DT, 1),
                                    LatencyModel(base=0.25), smoother=smoother)

    plain = run(None)
    smooth = run(MotionSmoother([1.0], [2.0], DT))
    assert plain['success'] and smooth['success']
    assert plain['max_jerk'] > 10 * 2.0 * DT  # the first chunk lands: 0 -> 1 rad/s and more at once
    assert smooth['max_jerk'] <= 2.0 * DT + 1e-9
    assert smooth['length'] > plain['length']  # the ramp up and the braking take time


def test_synchronous_queue_holds_during_every_inference():
    stitcher = ChunkStitcher('queue', DT, 1, n_action_steps=4)
    result = rollout_with_latency(LineEnv(), StepPolicy(), 't', 0, stitcher, LatencyModel(base=0.25),
                                  replan=0)
    assert result['holds'] >= 6  # the robot waits for each chunk


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class SlowPolicy(StepPolicy):
    """predict_chunk waits for a go (so a test can reset while it runs), or raises."""

    def __init__(self):
        import threading
        self.go, self.fail, self.resets, self.started = threading.Event(), False, 0, 0
        self.go.set()

    def reset(self):
        self.resets += 1

    def predict_chunk(self, obs):
        self.started += 1
        self.go.wait(5)
        if self.fail:
            raise RuntimeError('CUDA out of memory')
        return super().predict_chunk(obs)


def wait_until(predicate, timeout=5.0):
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_async_policy_serves_the_stitched_plan_and_discards_chunks_from_before_a_reset():
    from vla_control.async_policy import AsyncPolicy, PlanPending
    clock, policy = Clock(), SlowPolicy()
    stitcher = ChunkStitcher('latency', DT, 1)
    async_policy = AsyncPolicy(policy, stitcher, clock)
    try:
        obs = {'joint_positions': np.zeros(1)}
        with pytest.raises(PlanPending, match='no action chunk'):
            async_policy.select_action(obs)  # the first chunk is on its way
        assert wait_until(lambda: async_policy.inferences >= 1)
        clock.t = 0.2  # two ticks after the observation the chunk was computed from
        assert float(async_policy.select_action(obs)[0]) == pytest.approx(0.3)
        # a reset while an inference runs: its chunk is discarded, the plan is empty
        policy.go.clear()
        started = policy.started
        async_policy.select_action(obs)
        assert wait_until(lambda: policy.started > started)  # an inference waits in the model
        async_policy.reset()
        policy.go.set()
        assert wait_until(lambda: async_policy.discarded >= 1)
        with pytest.raises(PlanPending):
            async_policy.select_action(obs, now=0.3)
        # an inference that raises: counted, and the reason reaches the hold
        policy.fail = True
        async_policy.reset()
        with pytest.raises(PlanPending):
            async_policy.select_action(obs, now=0.4)
        assert wait_until(lambda: async_policy.errors >= 1)
        with pytest.raises(PlanPending, match='CUDA out of memory'):
            async_policy.select_action(obs, now=0.5)
    finally:
        async_policy.close()
    # a worker that died is restarted by the next tick
    assert not async_policy.thread.is_alive()
    async_policy.stopping.clear()
    policy.fail = False
    with pytest.raises(PlanPending):
        async_policy.select_action({'joint_positions': np.zeros(1)}, now=1.0)
    assert async_policy.restarts == 1 and async_policy.thread.is_alive()
    async_policy.close()


def test_the_control_loop_holds_on_a_pending_plan_without_resetting_it():
    from vla_control.async_policy import AsyncPolicy
    from vla_control.runtime import ControlLoop, Inputs, hold_reason
    from vla_safety.rules import SafetyLimits
    limits = SafetyLimits.from_values(['a'], [-2.0], [2.0], [5.0])
    clock = Clock()
    async_policy = AsyncPolicy(SlowPolicy(), ChunkStitcher('latency', DT, 1), clock)
    loop = ControlLoop(async_policy, limits, period=DT, max_age=0.25)
    try:
        q = np.zeros(1)
        tick = Inputs(0.0, 'go', None, 0.0, 0.0, '')
        first = loop.decide(tick, hold_reason(tick, 0.25, 0.0), {'joint_positions': q}, q)
        assert 'no action chunk yet' in first.hold and first.fault is None
        epoch = async_policy.epoch
        assert wait_until(lambda: async_policy.inferences >= 1)
        clock.t = 0.1
        tick = Inputs(0.1, 'go', None, 0.1, 0.1, '')
        acted = loop.decide(tick, None, {'joint_positions': q}, q)
        assert acted.command is not None and async_policy.epoch == epoch  # the plan was kept
    finally:
        async_policy.close()


def test_zero_latency_lands_within_the_tick_as_the_synchronous_controller():
    stitcher = ChunkStitcher('queue', DT, 1, n_action_steps=4)
    result = rollout_with_latency(LineEnv(), StepPolicy(), 't', 0, stitcher, LatencyModel(), replan=0)
    assert result['success'] and result['holds'] == 0


def test_replanner_follows_a_chunk_for_n_action_steps_and_waits_for_a_slow_model():
    from vla_control.chunking import Replanner
    plan = Replanner(chunk_size=16, n_action_steps=8, period=DT)
    assert plan.threshold == 8 and not plan.due(9) and plan.due(8) and plan.due(0)
    for _ in range(10):
        plan.landed(0.25)  # 2.5 ticks: still within what the chunk covers
    assert plan.threshold == 8
    for _ in range(10):
        plan.landed(1.15)  # a model slower than n_action_steps ticks: start earlier
    assert plan.threshold == 13 and plan.due(13) and not plan.due(14)
    assert Replanner(16, 8, DT, every=True).due(16)
    with pytest.raises(ValueError):
        Replanner(8, 9, DT)
    # in a rollout: an inference every ~n_action_steps ticks instead of every tick, no holds but
    # the first chunk's way, and the same success
    stitcher = ChunkStitcher('latency', DT, 1)
    result = rollout_with_latency(LineEnv(), StepPolicy(), 't', 0, stitcher, LatencyModel(base=0.25),
                                  replan=Replanner(8, 4, DT))
    every = rollout_with_latency(LineEnv(), StepPolicy(), 't', 0, ChunkStitcher('latency', DT, 1),
                                 LatencyModel(base=0.25))
    assert result['success'] and every['success'] and result['holds'] == every['holds'] == 3
    assert result['inferences'] < every['inferences']


def test_the_plan_preview_is_what_the_next_ticks_will_serve_without_serving_it():
    """``preview`` (the controller's ``plan_points``) reads the plan ahead in every mode; the
    actions then served at those ticks are the previewed ones."""
    for mode in ('latency', 'crossfade', 'ensemble', 'queue'):
        s = ChunkStitcher(mode, DT, 2, blend=4, decay=0.5, n_action_steps=6)
        assert s.preview(0.0, 3).shape == (0, 2)  # no plan yet
        s.add(ramp(0.0), 0.0, 0.0)
        s.action(0.0)
        if mode != 'queue':
            s.add(ramp(5.0), 0.1, 0.2)  # a disagreeing chunk: the handover is previewed too
        first = s.action(0.2 if mode != 'queue' else 0.1)[0]
        now = 0.2 if mode != 'queue' else 0.1
        ahead = s.preview(now, 3)
        assert ahead.shape == (3, 2), mode
        served = [s.action(now + DT * k)[0] for k in (1, 2, 3)]
        np.testing.assert_allclose(ahead, served, err_msg=mode)
        assert first is not None
    s = ChunkStitcher('latency', DT, 1)
    s.add(ramp(0.0, k=4, dim=1), 0.0, 0.0)
    assert s.preview(0.1, 5)[:, 0].tolist() == [2.0, 3.0]  # fewer where the plan ends
    q = ChunkStitcher('queue', DT, 1, n_action_steps=3)
    q.add(ramp(0.0, dim=1), 0.0, 0.0)
    q.add(ramp(10.0, dim=1), 0.1, 0.1)
    q.action(0.0)
    assert q.preview(0.0, 9)[:, 0].tolist() == [1.0, 2.0, 10.0, 11.0, 12.0]


def test_async_policy_upcoming_reads_the_plan_after_the_served_action():
    from vla_control.async_policy import AsyncPolicy, PlanPending
    clock, policy = Clock(), SlowPolicy()
    async_policy = AsyncPolicy(policy, ChunkStitcher('latency', DT, 1), clock)
    try:
        obs = {'joint_positions': np.zeros(1)}
        with pytest.raises(PlanPending):
            async_policy.select_action(obs)
        assert wait_until(lambda: async_policy.inferences >= 1)
        policy.go.clear()  # the next inference waits in the model: the plan stays
        clock.t = 0.2
        assert float(async_policy.select_action(obs)[0]) == pytest.approx(0.3)
        assert async_policy.upcoming(3)[:, 0] == pytest.approx([0.4, 0.5, 0.6])
    finally:
        policy.go.set()
        async_policy.close()
