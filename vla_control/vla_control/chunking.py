"""Asynchronous inference without ROS: action chunks stitched into one action per control tick.

A policy that predicts a chunk of K future actions from the observation at time ``t`` may hand
it back ``d`` seconds later.  The control tick must not wait for it: it serves the next action of
the current *plan*, and a :class:`ChunkStitcher` decides how a late chunk joins the plan:

* ``queue``: a chunk is served from its first action when it arrives, after the plan before it
  has run out (the synchronous controller's action queue; latency shifts the whole plan late);
* ``latency``: a chunk computed from the observation at ``t`` replaces the plan at once, from the
  action due *now* (index ``round((now - t) / period)``): its first ``d / period`` actions are
  already in the past and are skipped;
* ``crossfade``: as ``latency``, but the old plan hands over to the new one linearly over
  ``blend`` ticks, so the commanded path has no step where two chunks disagree;
* ``ensemble``: ACT's temporal ensembling, aligned by observation time: every chunk that covers
  the current tick votes with weight ``exp(-decay * i)`` (``i`` = 0 for the oldest).

Every action still goes through the controller's guard and the command gate (rate limit per unit
of time), so whatever a stitching policy produces reaches the robot without a jump.  A chunk
computed from an observation older than ``max_age`` is refused; a plan that runs out yields None:
the controller holds.

:class:`LatencyModel` makes injected inference delay reproducible (a fixed delay, plus spikes of
a given size every n-th inference), and :func:`rollout_with_latency` evaluates a policy in the
ROS-free simulator with it, counting delay in simulated ticks so that the outcome is the same on
every machine.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STITCHING = ('queue', 'latency', 'crossfade', 'ensemble')


@dataclass
class Chunk:
    actions: np.ndarray  # (K, A) robot units; actions[i] is the command due at obs_time + i * period
    obs_time: float  # time of the observation it was computed from (s, controller clock)


class ChunkStitcher:
    """Chunks in, one action per tick out (see the module docstring for the modes)."""

    def __init__(self, mode: str, period: float, action_dim: int, max_age: float = 1.0,
                 blend: int = 4, decay: float = 0.01, n_action_steps: int | None = None) -> None:
        if mode not in STITCHING:
            raise ValueError(f'stitching mode {mode!r} is unknown; expected one of {STITCHING}')
        if not period > 0 or not max_age > 0 or blend < 1 or decay < 0:
            raise ValueError(f'need period > 0, max_age > 0, blend >= 1, decay >= 0; got {period}, '
                             f'{max_age}, {blend}, {decay}')
        self.mode, self.period, self.action_dim = mode, float(period), int(action_dim)
        self.max_age, self.blend, self.decay = float(max_age), int(blend), float(decay)
        self.n_action_steps = n_action_steps  # queue mode: actions served of each chunk (None: all)
        self.refused = 0  # chunks refused since start (a reset keeps the count)
        self.reset()

    def reset(self) -> None:
        """Forget every chunk (a new command, a hold)."""
        self.chunks: deque[Chunk] = deque()  # queue mode: waiting chunks; others: recent ones
        self.current: Chunk | None = None  # queue mode: the chunk being served
        self.served = 0  # queue mode: actions of ``current`` served so far
        self.fade: tuple[Chunk, float] | None = None  # crossfade: (old chunk, handover start)

    # -- input ------------------------------------------------------------------------------
    def add(self, actions: np.ndarray, obs_time: float, now: float) -> str | None:
        """Take a chunk computed from the observation at ``obs_time``; the reason it was
        refused, or None."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self.action_dim or len(actions) == 0:
            self.refused += 1
            return (f'chunk of shape {tuple(actions.shape)} refused: expected (K, {self.action_dim}) '
                    'actions in the robot\'s joint order')
        if not np.all(np.isfinite(actions)):
            self.refused += 1
            return 'chunk refused: it holds non-finite actions'
        if obs_time > now + self.period:
            self.refused += 1
            return (f'chunk refused: its observation is stamped {obs_time - now:.3f} s in the future '
                    '(clock skew between the inference worker and the controller)')
        if now - obs_time > self.max_age:
            self.refused += 1
            return (f'chunk refused: computed from an observation {now - obs_time:.3f} s old '
                    f'(max_age {self.max_age:g} s)')
        if self.mode == 'queue' and self.n_action_steps:
            actions = actions[: self.n_action_steps]
        chunk = Chunk(actions, float(obs_time))
        if self.mode == 'queue':
            self.chunks.append(chunk)
            return None
        if self.mode == 'crossfade' and self.chunks and self._sample(self.chunks[-1], now) is not None:
            self.fade = (self.chunks[-1], now)  # hand over from the plan being executed
        self.chunks.append(chunk)
        while len(self.chunks) > 1 and self._index(self.chunks[0], now) >= len(self.chunks[0].actions):
            self.chunks.popleft()  # entirely in the past
        if self.mode != 'ensemble':
            while len(self.chunks) > 2:
                self.chunks.popleft()
        return None

    # -- output -----------------------------------------------------------------------------
    def remaining(self, now: float) -> int:
        """Ticks of plan left from ``now`` (the next inference should land before it ends)."""
        if self.mode == 'queue':
            left = 0 if self.current is None else len(self.current.actions) - self.served
            return left + sum(len(c.actions) for c in self.chunks)
        if not self.chunks:
            return 0
        newest = self.chunks[-1]
        return max(0, len(newest.actions) - self._index(newest, now))

    def action(self, now: float) -> tuple[np.ndarray | None, str]:
        """The action due at ``now``, or (None, why the controller must hold)."""
        if not self.chunks and self.current is None:
            return None, 'no action chunk yet'
        if self.mode == 'queue':
            action = self._queue_action()
        elif self.mode == 'ensemble':
            action = self._ensemble_action(now)
        else:
            action, fading = self._planned(now)
            if not fading:
                self.fade = None  # the handover has ended
        if action is None:
            return None, 'the plan ran out: no chunk covers this tick (inference is late or stalled)'
        return action, ''

    def preview(self, now: float, n: int) -> np.ndarray:
        """The plan's next ``n`` actions after the one due at ``now`` (due at ``now + period``,
        ``now + 2 period``, ...) as it stands, without serving them: (k, A), k <= n, fewer where
        the plan ends (queue: what is left of the queued chunks)."""
        ahead: list[np.ndarray] = []
        if self.mode == 'queue':
            if self.current is not None:
                ahead += list(self.current.actions[self.served:])
            ahead += [a for chunk in self.chunks for a in chunk.actions]
            ahead = ahead[:n]
        elif self.chunks:
            for k in range(1, n + 1):
                t = now + k * self.period
                action = self._ensemble_action(t) if self.mode == 'ensemble' else self._planned(t)[0]
                if action is None:
                    break
                ahead.append(action)
        return np.asarray(ahead, dtype=np.float64).reshape(len(ahead), self.action_dim)

    def _planned(self, now: float) -> tuple[np.ndarray | None, bool]:
        """latency, crossfade: the newest chunk's action due at ``now``, crossfaded from the old
        plan's while the handover lasts; and False when the handover has ended."""
        action = self._sample(self.chunks[-1], now)
        if action is None or self.mode != 'crossfade' or self.fade is None:
            return action, True
        old_chunk, start = self.fade
        old = self._sample(old_chunk, now)
        w = min(1.0, (now - start) / (self.blend * self.period) + 1.0 / self.blend)
        if old is None or w >= 1.0:
            return action, False
        return (1.0 - w) * old + w * action, True

    def _index(self, chunk: Chunk, now: float) -> int:
        return int(math.floor((now - chunk.obs_time) / self.period + 0.5))

    def _sample(self, chunk: Chunk, now: float) -> np.ndarray | None:
        i = self._index(chunk, now)
        if i >= len(chunk.actions):
            return None
        return chunk.actions[max(0, i)]

    def _queue_action(self) -> np.ndarray | None:
        if self.current is None or self.served >= len(self.current.actions):
            if not self.chunks:
                return None
            self.current, self.served = self.chunks.popleft(), 0
        action = self.current.actions[self.served]
        self.served += 1
        return action

    def _ensemble_action(self, now: float) -> np.ndarray | None:
        votes = [a for a in (self._sample(c, now) for c in self.chunks) if a is not None]
        if not votes:
            return None
        weights = np.exp(-self.decay * np.arange(len(votes)))
        return (weights[:, None] * np.stack(votes)).sum(0) / weights.sum()


class Replanner:
    """When to start the next inference: once the plan has at most ``threshold`` ticks left.

    ``every``: as soon as the previous inference is done (every tick at zero latency).
    Otherwise the threshold is ``chunk_size - n_action_steps`` (a chunk is followed for about
    ``n_action_steps`` ticks before the next one takes over, as the synchronous action queue
    does, whatever the latency up to that many ticks), raised to the expected latency in ticks
    plus one (the 90th percentile of the last observation-to-landing delays) so that a slow
    model's next chunk lands before the plan runs out.
    """

    def __init__(self, chunk_size: int, n_action_steps: int, period: float, every: bool = False,
                 window: int = 20) -> None:
        if chunk_size < 1 or not 1 <= n_action_steps <= chunk_size or not period > 0:
            raise ValueError(f'need 1 <= n_action_steps <= chunk_size and period > 0; got '
                             f'{n_action_steps}, {chunk_size}, {period}')
        self.every, self.period = bool(every), float(period)
        self.base = int(chunk_size) - int(n_action_steps)
        self.delays: deque[float] = deque(maxlen=window)

    @property
    def threshold(self) -> int:
        if not self.delays:
            return self.base
        expected = math.ceil(float(np.percentile(self.delays, 90)) / self.period - 1e-9)
        return max(self.base, expected + 1)

    def due(self, remaining: int) -> bool:
        """Whether an inference should start with ``remaining`` ticks of plan left."""
        return self.every or remaining <= self.threshold

    def landed(self, delay: float) -> None:
        """A chunk landed ``delay`` s after the observation it was computed from."""
        self.delays.append(max(0.0, float(delay)))


@dataclass
class LatencyModel:
    """Injected inference delay: ``base`` seconds, and ``spike`` seconds more on every
    ``spike_every``-th inference (0: never).  Deterministic, so runs compare on the same seeds."""

    base: float = 0.0
    spike: float = 0.0
    spike_every: int = 0
    count: int = field(default=0, init=False)

    def next(self) -> float:
        self.count += 1
        extra = self.spike if self.spike_every and self.count % self.spike_every == 0 else 0.0
        return self.base + extra


def rollout_with_latency(env: Any, policy: Any, task: str, seed: int, stitcher: ChunkStitcher,
                         latency: LatencyModel, replan: int | Replanner | None = None,
                         smoother: Any = None) -> dict[str, Any]:
    """One ROS-free episode with asynchronous inference whose delay is counted in simulated time.

    An inference starts on the newest observation when none is running and the plan has at most
    ``replan`` ticks left (an int, or a :class:`Replanner` that decides; default: as soon as the
    previous one is done); it lands
    ``ceil(delay / period)`` ticks later (0 ms: within the tick, as the synchronous controller).  Each tick the robot is commanded the
    stitched action, or held at its last command while there is none.  Returns success, length,
    hold ticks, inferences and the largest change of commanded joint velocity between ticks
    (``max_jerk``, robot units per s per tick).  With ``smoother`` (a
    :class:`vla_control.smoothing.MotionSmoother`, as the controller's ``max_acceleration``) each
    action is followed within its acceleration limit; a hold stops the arm and the motion
    starts again from rest.
    """
    period = stitcher.period
    obs = env.reset(task=task, seed=seed)
    policy.reset()
    stitcher.reset()
    if smoother is not None:
        smoother.reset()
    pending: tuple[int, np.ndarray, float] | None = None  # (landing tick, chunk, obs time)
    hold = np.asarray(obs['joint_positions'], dtype=np.float64)
    commands: list[np.ndarray] = []
    holds = inferences = 0
    done, info, tick = False, {'success': False}, 0
    while not done:
        now = tick * period
        if pending is not None and tick >= pending[0]:
            stitcher.add(pending[1], pending[2], now)
            if isinstance(replan, Replanner):
                replan.landed(now - pending[2])
            pending = None
        left = stitcher.remaining(now)
        due = (replan is None or (replan.due(left) if isinstance(replan, Replanner) else left <= replan))
        if pending is None and due:
            land = tick + math.ceil(latency.next() / period - 1e-9)  # 0 ms: this tick, as in sync
            chunk = policy.predict_chunk(obs)
            inferences += 1
            if land <= tick:
                stitcher.add(chunk, now, now)
                if isinstance(replan, Replanner):
                    replan.landed(0.0)
            else:
                pending = (land, chunk, now)
        action, _why = stitcher.action(now)
        if action is None:
            holds += 1
            action = hold
            if smoother is not None:
                smoother.reset()
        elif smoother is not None:
            action = smoother.step(hold, action)
        hold = np.asarray(action, dtype=np.float64)
        commands.append(hold)
        obs, _reward, done, info = env.step(hold.astype(np.float32))
        tick += 1
    cmd = np.stack(commands)
    velocity = np.diff(cmd, axis=0) / period
    jerk = float(np.abs(np.diff(velocity, axis=0)).max()) if len(velocity) > 1 else 0.0
    return {'task': task, 'seed': seed, 'success': bool(info['success']), 'length': tick,
            'holds': holds, 'inferences': inferences, 'max_jerk': jerk}
