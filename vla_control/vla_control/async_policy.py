"""Asynchronous inference without ROS: a policy behind an inference thread whose chunks a
:class:`~vla_control.chunking.ChunkStitcher` joins into one action per control tick (the
controller's ``inference: async``)."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

from vla_control.chunking import ChunkStitcher, LatencyModel, Replanner


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
        self.served_at = 0.0  # the time of the tick select_action served last
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
            self.served_at = now
        self.wake.set()
        self.predicted_chunk = False
        if action is None:
            raise PlanPending(why if not self.last_error else f'{why}; last inference error: {self.last_error}')
        return np.asarray(action, dtype=np.float32)

    def upcoming(self, n: int) -> np.ndarray:
        """The plan's next ``n`` actions after the one :meth:`select_action` returned last, due
        one tick apart (fewer where the plan ends; :meth:`ChunkStitcher.preview`): what a
        downstream trajectory controller can interpolate towards (``plan_points``)."""
        with self.lock:
            return self.stitcher.preview(self.served_at, n)

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
