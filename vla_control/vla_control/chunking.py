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
import threading
import time
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
            action = self._sample(self.chunks[-1], now)
            if action is not None and self.mode == 'crossfade' and self.fade is not None:
                old_chunk, start = self.fade
                old = self._sample(old_chunk, now)
                w = min(1.0, (now - start) / (self.blend * self.period) + 1.0 / self.blend)
                if old is None or w >= 1.0:
                    self.fade = None
                else:
                    action = (1.0 - w) * old + w * action
        if action is None:
            return None, 'the plan ran out: no chunk covers this tick (inference is late or stalled)'
        return action, ''

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
                         latency: LatencyModel, replan: int | Replanner | None = None) -> dict[str, Any]:
    """One ROS-free episode with asynchronous inference whose delay is counted in simulated time.

    An inference starts on the newest observation when none is running and the plan has at most
    ``replan`` ticks left (an int, or a :class:`Replanner` that decides; default: as soon as the
    previous one is done); it lands
    ``ceil(delay / period)`` ticks later (0 ms: within the tick, as the synchronous controller).  Each tick the robot is commanded the
    stitched action, or held at its last command while there is none.  Returns success, length,
    hold ticks, inferences and the largest change of commanded joint velocity between ticks
    (``max_jerk``, robot units per s per tick).
    """
    period = stitcher.period
    obs = env.reset(task=task, seed=seed)
    policy.reset()
    stitcher.reset()
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
        hold = np.asarray(action, dtype=np.float64)
        commands.append(hold)
        obs, _reward, done, info = env.step(hold.astype(np.float32))
        tick += 1
    cmd = np.stack(commands)
    velocity = np.diff(cmd, axis=0) / period
    jerk = float(np.abs(np.diff(velocity, axis=0)).max()) if len(velocity) > 1 else 0.0
    return {'task': task, 'seed': seed, 'success': bool(info['success']), 'length': tick,
            'holds': holds, 'inferences': inferences, 'max_jerk': jerk}


class PlanPending(RuntimeError):
    """No action is due from the asynchronous plan yet (or it ran out): hold, keep the plan."""


class AsyncPolicy:
    """A VLAPolicy behind an inference thread, with :meth:`select_action` for the control loop.

    The control tick calls :meth:`select_action` with the newest observation: it hands the
    observation to the worker (which predicts on the newest one it has once the
    :class:`Replanner` says the plan needs a new chunk) and returns the
    stitched action due now, or raises :class:`PlanPending` with the reason to hold.  The worker
    stamps each chunk with the time of the observation it was computed from, sleeps the injected
    latency (tests, benchmarks), and hands the chunk to the stitcher unless the plan was reset
    meanwhile (a new command, a hold): chunks from before a reset are discarded.  A worker that
    dies is restarted on the next tick and counted in :attr:`restarts`; an inference that raises
    is counted in :attr:`errors` (the plan runs out and the controller holds, saying why).
    """

    def __init__(self, policy: Any, stitcher: ChunkStitcher, clock: Any,
                 latency: LatencyModel | None = None, sleep: Any = None, on_start: Any = None,
                 replanner: Replanner | None = None) -> None:
        self.policy, self.stitcher, self.clock = policy, stitcher, clock
        # when the next inference starts (default: the policy's chunk_size - n_action_steps
        # ticks before the plan ends, or earlier for a slow model)
        cfg = getattr(policy, 'config', None)
        self.replanner = replanner or (
            Replanner(int(cfg.chunk_size), int(cfg.n_action_steps), stitcher.period)
            if cfg is not None and hasattr(cfg, 'chunk_size') else Replanner(1, 1, stitcher.period, every=True))
        self.latency = latency or LatencyModel()
        self.sleep = sleep or time.sleep
        self.on_start = on_start  # called in the worker thread first (e.g. torch.set_num_threads)
        self.predicted_chunk = False
        self.encode_every_frame = False  # (VLAPolicy compatibility; every chunk encodes its frame)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.newest: tuple[dict[str, Any], float] | None = None  # (observation, its time)
        self.epoch = 0  # advanced by reset(); a chunk of an older epoch is discarded
        self.worker_epoch = -1
        self.inferences = self.errors = self.restarts = self.discarded = 0
        self.last_error = ''
        self.inference_ms: deque[float] = deque(maxlen=300)
        self.thread: Any = None
        self._start()

    @property
    def config(self) -> Any:
        return self.policy.config

    def _start(self) -> None:
        self.thread = threading.Thread(target=self._work, name='vla_async_inference', daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.epoch += 1
            self.newest = None
            self.stitcher.reset()

    def close(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=5.0)

    def select_action(self, obs: dict[str, Any], now: float | None = None) -> np.ndarray:
        now = self.clock() if now is None else now
        if not self.thread.is_alive() and not self.stopping.is_set():
            self.restarts += 1
            self._start()
        with self.lock:
            self.newest = (obs, now)
            action, why = self.stitcher.action(now)
        self.wake.set()
        self.predicted_chunk = False
        if action is None:
            raise PlanPending(why if not self.last_error else f'{why}; last inference error: {self.last_error}')
        return np.asarray(action, dtype=np.float32)

    def _work(self) -> None:
        if self.on_start is not None:
            self.on_start()
        while not self.stopping.is_set():
            if not self.wake.wait(timeout=0.1):
                continue
            self.wake.clear()
            with self.lock:
                job, epoch = self.newest, self.epoch
                due = self.replanner.due(self.stitcher.remaining(self.clock()))
            if job is None or not due:
                continue  # the next tick wakes the worker again
            obs, obs_time = job
            if epoch != self.worker_epoch:
                self.policy.reset()  # a new command or a hold: forget the frame history
                self.worker_epoch = epoch
            start = time.perf_counter()
            try:
                chunk = self.policy.predict_chunk(obs)
            except Exception as exc:  # noqa: BLE001 - counted; the plan runs out and the robot holds
                self.errors += 1
                self.last_error = str(exc)
                continue
            self.inference_ms.append((time.perf_counter() - start) * 1e3)
            delay = self.latency.next()
            if delay > 0:
                self.sleep(delay)
            with self.lock:
                if epoch != self.epoch:
                    self.discarded += 1
                    continue
                now = self.clock()
                problem = self.stitcher.add(chunk, obs_time, now)
                if problem is None:
                    self.replanner.landed(now - obs_time)
                self.inferences += 1
                self.last_error = problem or ''
            self.wake.set()  # predict again on the newest observation
