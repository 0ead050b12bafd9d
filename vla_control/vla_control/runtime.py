"""The controller's ROS-free parts: when to hold, what to command, the last line of command
checks, timing.

``controller_node`` is a thin adapter around these; tests and benchmarks use them directly.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_control.async_policy import PlanPending
from vla_control.smoothing import MotionSmoother
from vla_safety.rules import SafetyLimits, clip_to_bounds, limit_step


@dataclass(frozen=True)
class Inputs:
    """What the controller knows at a tick (times in seconds on the node clock)."""

    now: float
    instruction: str  # '' = no command
    command_time: float | None  # when the current command arrived
    image_time: float | None  # arrival of the newest usable image
    state_time: float | None  # arrival of the newest usable joint state
    estop: str  # latched e-stop reason, '' = none


def hold_reason(inputs: Inputs, max_age: float, settle_time: float) -> str | None:
    """Why the controller must hold the robot this tick, or None when it may act.

    Holds with no command, during an emergency stop, without a recent image or joint state
    (older than ``max_age``) and for ``settle_time`` after the command changed.
    """
    if inputs.estop:
        return f'emergency stop: {inputs.estop}'
    if not inputs.instruction:
        return 'no command yet (publish one on /voice_command)'
    if inputs.image_time is None:
        return 'no camera image yet'
    if inputs.state_time is None:
        return 'no joint state yet'
    age = inputs.now - inputs.image_time
    if age > max_age:
        return f'camera image is stale ({age:.2f} s old, limit {max_age:g} s)'
    age = inputs.now - inputs.state_time
    if age > max_age:
        return f'joint state is stale ({age:.2f} s old, limit {max_age:g} s)'
    if inputs.command_time is not None and inputs.now - inputs.command_time < settle_time:
        return f'new command: settling for {settle_time:g} s'
    return None


class ActionGuard:
    """Defence in depth before publishing: finite, inside the bounds, within one tick's motion.

    The command gate applies the same rules; the controller applies them too, so a policy that
    misbehaves is caught even where the gate is configured differently.  With
    ``max_acceleration`` (per joint) the targets are also followed within that acceleration
    (:class:`vla_control.smoothing.MotionSmoother`): where chunks hand over or a policy is noisy,
    the commanded velocity changes by at most ``max_acceleration`` x one tick.
    """

    def __init__(self, limits: SafetyLimits, period: float,
                 max_acceleration: np.ndarray | None = None) -> None:
        self.limits, self.period = limits, float(period)
        self.previous: np.ndarray | None = None  # last commanded target
        self.smoother = (None if max_acceleration is None
                         else MotionSmoother(limits.max_velocity, max_acceleration, period))

    def reset(self) -> None:
        self.previous = None
        if self.smoother is not None:
            self.smoother.reset()  # acting starts again from rest (a hold stopped the arm)

    def __call__(self, action: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray | None, str]:
        """(target, '') or (None, why the action was refused)."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (self.limits.n,):
            return None, (f'model output has {action.size} values, the robot has '
                          f'{self.limits.n} joints {list(self.limits.joint_names)}')
        if not np.all(np.isfinite(action)):
            bad = [self.limits.joint_names[j] for j in np.flatnonzero(~np.isfinite(action))]
            return None, f'model output is not finite for {bad}: {action.tolist()}'
        target, _ = clip_to_bounds(action, self.limits)
        start = measured if self.previous is None else self.previous
        target = self._limit(start, target)
        if self.smoother is not None:
            self.smoother.correct(target, start)
        self.previous = target
        return target, ''

    def plan(self, first: np.ndarray, actions: np.ndarray) -> np.ndarray | None:
        """The points after ``first`` (the target commanded now), one tick apart: ``actions``
        (the policy's upcoming plan) clipped to the bounds and each within one tick's motion of
        the point before (and followed within ``max_acceleration`` from the commanded motion);
        (P, N), up to the first action that is not finite or not N values; None when there is
        none.  Does not change :attr:`previous` or the commanded motion."""
        targets = []
        for action in actions:
            action = np.asarray(action, dtype=np.float64).reshape(-1)
            if action.shape != (self.limits.n,) or not np.all(np.isfinite(action)):
                break
            targets.append(clip_to_bounds(action, self.limits)[0])
        if self.smoother is not None and targets:
            # the smoothed path may brake past a bound it ran into: clipped like a target
            targets = [clip_to_bounds(t, self.limits)[0] for t in self.smoother.preview(first, targets)]
        points, previous = [], np.asarray(first, dtype=np.float64)
        for target in targets:
            previous, _ = limit_step(previous, target, self.period, self.limits.max_velocity)
            points.append(previous)
        return np.stack(points) if points else None

    def _limit(self, start: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``target`` (inside the bounds) followed from ``start`` within the acceleration
        (when set; the smoothed path clipped to the bounds again) and the speed limit."""
        if self.smoother is not None:
            target = clip_to_bounds(self.smoother.step(start, target), self.limits)[0]
        return limit_step(start, target, self.period, self.limits.max_velocity)[0]


class RateMeter:
    """Latency percentiles and the achieved tick rate over a sliding window."""

    def __init__(self, window: int = 300) -> None:
        self.latencies: deque[float] = deque(maxlen=window)  # seconds
        self.ticks: deque[float] = deque(maxlen=window)  # tick start times (s)
        self.pending: list[float] = []  # latencies since the last report (ms)

    def add(self, start: float, latency: float) -> None:
        self.latencies.append(latency)
        self.ticks.append(start)
        self.pending.append(latency * 1e3)

    def percentiles_ms(self) -> tuple[float, float]:
        if not self.latencies:
            return float('nan'), float('nan')
        values = np.asarray(self.latencies) * 1e3
        return float(np.percentile(values, 50)), float(np.percentile(values, 99))

    def rate_hz(self) -> float:
        if len(self.ticks) < 2 or self.ticks[-1] <= self.ticks[0]:
            return 0.0
        return (len(self.ticks) - 1) / (self.ticks[-1] - self.ticks[0])

    def take_pending(self) -> list[float]:
        out, self.pending = self.pending, []
        return out


def check_image_size(expected: Sequence[int], height: int, width: int) -> str | None:
    """Why a camera image of ``height`` x ``width`` does not fit a checkpoint trained on
    ``expected`` ([H, W], empty when unknown), or None."""
    if len(expected) != 2:
        return None
    if (int(expected[0]), int(expected[1])) != (height, width):
        return (f'camera images are {height}x{width} but the checkpoint was trained on '
                f'{int(expected[0])}x{int(expected[1])} images')
    return None


def state_is_fresh(inputs: Inputs, max_age: float) -> bool:
    """Whether the newest joint state is recent enough to command the arm to it."""
    return inputs.state_time is not None and inputs.now - inputs.state_time <= max_age


@dataclass(frozen=True)
class Snapshot:
    """The decoded inputs of one tick and when they arrived (seconds on the node clock): what
    :meth:`ControlLoop.step` decides on.  Images are (H, W, 3) RGB."""

    now: float
    instruction: str = ''  # '' = no command
    command_time: float | None = None  # when the current command arrived
    command_changed: bool = False  # a command message (or an e-stop release) since the last tick
    estop: str = ''  # latched e-stop reason, '' = none
    image: np.ndarray | None = None  # newest main camera image
    image_time: float | None = None
    extra_images: Mapping[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    q: np.ndarray | None = None  # newest joint positions (and velocities), in the limits' order
    v: np.ndarray | None = None
    state_time: float | None = None
    stamp: float | None = None  # lock-step: the stamp of the tick answered (every input is of it)
    error: str = ''  # why the controller is in its error state ('' = not)


@dataclass
class TickResult:
    """What the controller does at one tick."""

    command: np.ndarray | None = None  # joint target to publish now; None = publish nothing
    plan: np.ndarray | None = None  # (P, N) the plan's next targets after command, a tick apart
    action: np.ndarray | None = None  # the policy's action when acting (for the recording)
    # end-effector checkpoints: ``action`` is the joint target IK gave, this the policy's action
    action_ee: np.ndarray | None = None
    hold: str = ''  # why the controller holds ('' = acting)
    log: tuple[str, str] | None = None  # (level 'info' | 'warning', line) to log this tick
    fault: tuple[str, str] | None = None  # (kind, message) to count in /diagnostics
    predicted: bool = False  # the policy ran the model (predicted a chunk) this tick
    # while holding: where the robot is held (a lock-step controller answers every tick with
    # it); None during an emergency stop (the gate holds) or with nothing to hold at
    standing: np.ndarray | None = None
    obs: dict[str, Any] | None = None  # the policy's observation when it was asked (step)
    new_command: bool = False  # step started a new episode: a new command's rollout begins


REANCHOR_TIME = 0.15  # s at max_velocity: an arm further off its hold target was moved (reset)


class ControlLoop:
    """The controller's decisions per tick, without ROS: act on the policy or hold, and what
    to command when holding.

    A hold (any reason: stale input, a failing or misbehaving policy, an e-stop, a new
    command) resets the policy, so actions queued before the stall are never run after it,
    and commands one hold when the controller was acting: the measured position when the
    joint state is fresh, else the last commanded target (the arm was sent there; a stale
    measured position would drag it back), else nothing.  During an emergency stop the gate
    holds the robot and the controller commands nothing.

    With ``ee`` (a :class:`~vla_control.ee_actions.EEActionConverter`) the policy's actions are
    end-effector deltas: each becomes joint targets before the guard, the commanded tool pose
    anchored at the measured joints whenever acting starts (the first action, after any hold
    or a new command), and IK that does not converge holds with the reason.
    """

    def __init__(self, policy: Any, limits: SafetyLimits, period: float, max_age: float,
                 settle_time: float = 0.3, cameras: Sequence[str] = (), plan_points: int = 0,
                 ee: Any = None, max_acceleration: np.ndarray | None = None) -> None:
        self.policy = policy  # VLAPolicy-like: select_action(obs), reset(), predicted_chunk
        self.ee = ee  # EEActionConverter for end-effector actions, None for joint targets
        self.guard = ActionGuard(limits, period, max_acceleration)
        self.max_age = float(max_age)
        self.settle_time = float(settle_time)
        self.cameras = list(cameras)  # extra cameras the policy needs besides the main one
        # acting: up to this many of the policy's upcoming actions (``upcoming(n)``) follow the
        # command as points one tick apart (a trajectory controller interpolates through them)
        self.plan_points = max(0, int(plan_points))
        self.hold = ''  # current hold reason ('' = acting)
        self.ticks = self.actions = self.holds = 0
        self.last_target: np.ndarray | None = None  # last joint target commanded
        self.standing: np.ndarray | None = None  # where the current hold holds the robot

    def new_episode(self) -> None:
        """A new command: the policy forgets its history and queue."""
        if self.policy is not None:
            self.policy.reset()
        self.guard.reset()
        if self.ee is not None:
            self.ee.invalidate()  # re-anchored at the measured pose when acting starts again

    def hold_target(self, inputs: Inputs, q: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """(where to hold, how it was chosen): the fresh measured position, else the last
        commanded target, else (None, why nothing)."""
        if inputs.estop:
            return None, 'the gate holds during the emergency stop'
        if q is not None and state_is_fresh(inputs, self.max_age):
            return np.asarray(q, dtype=np.float64), 'at the measured position'
        if self.last_target is not None:
            return self.last_target, ('at the last commanded target, not at the stale measured '
                                      'position')
        return None, 'nothing commanded: no fresh joint state and no earlier target'

    def final_hold(self, snap: Snapshot) -> tuple[np.ndarray | None, str]:
        """Where to hold the robot when the controller stops (as :meth:`hold_target`: the
        fresh measured position, else the last commanded target); (None, '') when it never
        acted."""
        if not self.actions:
            return None, ''
        return self.hold_target(Inputs(snap.now, snap.instruction, snap.command_time,
                                       snap.image_time, snap.state_time, snap.estop), snap.q)

    def step(self, snap: Snapshot) -> TickResult:
        """One tick on the inputs of ``snap``: the action to command, or a hold and its reason.

        A changed command starts a new episode; the oldest camera decides whether the view is
        fresh enough; in lock-step (``snap.stamp``) every input is of the tick answered and a
        continuing hold is answered by re-sending where it stands (``command``)."""
        self.ticks += 1
        missing = [c for c in self.cameras if c not in snap.extra_images]
        image_time = None if missing or snap.image_time is None else min(
            [snap.image_time, *(snap.extra_images[c][1] for c in self.cameras)])
        state_time = snap.state_time
        if snap.stamp is not None:
            image_time = state_time = snap.stamp
        inputs = Inputs(snap.now, snap.instruction, snap.command_time, image_time, state_time,
                        snap.estop)
        if snap.command_changed:
            self.new_episode()
        reason = snap.error or hold_reason(inputs, self.max_age, self.settle_time)
        if reason == 'no camera image yet' and missing and snap.image is not None:
            reason = f'no image yet from the {missing[0]} camera (/camera/{missing[0]}/image_raw)'
        obs = None if reason else {
            'image': snap.image,
            **{f'image_{c}': snap.extra_images[c][0] for c in self.cameras if c not in missing},
            'joint_positions': snap.q, 'instruction': inputs.instruction}
        result = self.decide(inputs, reason, obs, snap.q)
        result.obs, result.new_command = obs, snap.command_changed
        if result.command is None and snap.stamp is not None and result.standing is not None:
            result.command = result.standing  # answer the tick: the hold goes on
        return result

    def decide(self, inputs: Inputs, reason: str | None, obs: dict[str, Any] | None,
               q: np.ndarray | None) -> TickResult:
        """One tick's decision: hold for ``reason`` (from :func:`hold_reason`, or an error),
        else act on ``obs`` (the policy's observation) with the measured position ``q``."""
        if reason:
            return self._enter_hold(reason, inputs, q)
        try:
            action = self.policy.select_action(obs)
        except PlanPending as exc:  # asynchronous inference: no action due yet; keep the plan
            return self._enter_hold(str(exc), inputs, q, reset=False)
        except Exception as exc:  # noqa: BLE001 - a failing tick holds, the caller keeps running
            result = self._enter_hold(f'policy failed: {exc}', inputs, q)
            result.fault = ('inference error', f'policy failed: {exc}')
            return result
        predicted = bool(getattr(self.policy, 'predicted_chunk', True))
        joints, problem, kind = action, '', 'bad model output'
        if self.ee is not None:
            if self.hold or not self.ee.anchored:  # acting starts: from the measured pose
                self.ee.anchor(q)
            joints, problem = self.ee.step(action)
            kind = 'ik not converged' if problem.startswith('IK') else kind
        target = None
        if joints is not None:
            target, problem = self.guard(joints, q)
        if target is None:
            result = self._enter_hold(problem, inputs, q)
            result.fault, result.predicted = (kind, problem), predicted
            return result
        log = ('info', f'acting on {inputs.instruction!r}') if self.hold else None
        self.hold, self.last_target = '', target
        self.actions += 1
        upcoming = getattr(self.policy, 'upcoming', None) if self.plan_points else None
        plan = None
        if upcoming is not None:
            ahead = upcoming(self.plan_points)
            plan = self.guard.plan(target, ahead if self.ee is None else self.ee.preview(ahead))
        ee_action = None if self.ee is None else np.asarray(action, dtype=np.float32)
        return TickResult(command=target, plan=plan, action=np.asarray(joints, dtype=np.float32),
                          action_ee=ee_action, log=log, predicted=predicted)

    def _enter_hold(self, reason: str, inputs: Inputs, q: np.ndarray | None,
                    reset: bool = True) -> TickResult:
        same = reason.split(' (')[0] == self.hold.split(' (')[0]  # e.g. the same stale input
        was_acting = not self.hold and self.actions > 0
        self.hold = reason
        if same:
            return TickResult(hold=reason, standing=self._standing(inputs, q))
        self.holds += 1
        if reset:
            self.new_episode()  # drop the queue planned before the stall, and the history
        elif self.guard.smoother is not None:
            self.guard.smoother.reset()  # the hold stops the arm: acting resumes from rest
        command, how = self.hold_target(inputs, q) if was_acting else (None, '')
        if command is not None:
            self.last_target = command
        self.standing = command
        line = f'holding: {reason}' + (f' ({how})' if was_acting else '')
        return TickResult(command=command, hold=reason, log=('warning', line),
                          standing=self._standing(inputs, q))

    def _standing(self, inputs: Inputs, q: np.ndarray | None) -> np.ndarray | None:
        """Where a continuing hold holds the robot: the target it started with, re-taken at the
        fresh measured position when there was none or when the arm is far from it (moved, not
        driven: a simulator reset); None during an emergency stop or with no fresh state."""
        if inputs.estop:
            return None
        fresh = q is not None and state_is_fresh(inputs, self.max_age)
        if fresh:
            q = np.asarray(q, dtype=np.float64)
            far = self.standing is None or np.any(
                np.abs(q - self.standing) > self.guard.limits.max_velocity * REANCHOR_TIME)
            if far:
                self.standing = q.copy()
        return self.standing


class EventRate:
    """Events per minute over the last ``window`` seconds of a clock (e.g. overruns)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = float(window)
        self.times: deque[float] = deque()
        self.start: float | None = None  # first time seen: the rate of a young node is scaled
        self.last = float('-inf')  # latest time seen

    def _trim(self, now: float) -> None:
        if self.start is None or now < self.last:  # first call, or the clock jumped back
            self.times.clear()
            self.start = now
        self.last = now
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()

    def add(self, now: float) -> None:
        self._trim(now)
        self.times.append(now)

    def per_minute(self, now: float) -> float:
        self._trim(now)
        span = min(self.window, now - self.start)
        return len(self.times) * 60.0 / max(span, 1.0)

