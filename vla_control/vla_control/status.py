"""The controller's ``/diagnostics`` status, without ROS: tick timing and counts, and the
key-value pairs ``vla_controller`` publishes (the keys are a public interface: ``vla
evaluate`` and the report read them)."""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from vla_control.runtime import ControlLoop, EventRate, RateMeter


class TickStats:
    """The controller's timing and counts between ticks: latency per acting tick and per tick
    that ran the model, the achieved rate, overruns (ticks skipped while the previous one ran)."""

    def __init__(self, period: float) -> None:
        window = max(30, int(10 / period))
        self.meter = RateMeter(window=window)  # every acting tick
        self.inference_meter = RateMeter(window=window)  # ticks that ran the model
        self.clock_waits: deque[float] = deque(maxlen=window)  # lock-step: s waited for /clock per tick
        self.overrun_rate = EventRate(60.0)
        self.overruns = self.inferences = 0

    def acted(self, start: float, latency: float, predicted: bool) -> None:
        self.meter.add(start, latency)
        if predicted:
            self.inferences += 1
            self.inference_meter.add(start, latency)

    def clock_waited(self, seconds: float) -> None:
        """Lock-step: how long a tick waited for the node clock to reach its stamp (not part of
        its latency: a real-time robot has no such wait)."""
        self.clock_waits.append(seconds)

    def clock_wait_p99_ms(self) -> float:
        return float(np.percentile(self.clock_waits, 99)) * 1e3 if self.clock_waits else float('nan')

    def overrun(self, now: float) -> None:
        self.overruns += 1
        self.overrun_rate.add(now)


def status_values(state: str, error: str, loop: ControlLoop, stats: TickStats, *, now: float,
                  instruction: str, period: float, faults: Any, num_threads: int,
                  encode_every_tick: bool, policy: Any) -> tuple[str, str, list[tuple[str, Any]]]:
    """(level 'ok' | 'warn' | 'error', message, key-value pairs) of the controller's
    ``/diagnostics`` status; takes the latency samples gathered since the last call."""
    p50, p99 = stats.meter.percentiles_ms()
    i50, i99 = stats.inference_meter.percentiles_ms()
    hold = loop.hold
    if state == 'error':
        level, message = 'error', f'error: {error}'
    elif hold:
        level, message = 'warn', f'holding: {hold}'
    else:
        level, message = 'ok', 'acting'
    values = [('state', state if not hold or state == 'error' else 'holding'),
              ('hold_reason', hold), ('command', instruction),
              # per acting tick (most are served from the action queue) ...
              ('latency_p50_ms', f'{p50:.2f}'), ('latency_p99_ms', f'{p99:.2f}'),
              # ... and per tick that ran the model (encoded and predicted a chunk)
              ('inference_latency_p50_ms', f'{i50:.2f}'),
              ('inference_latency_p99_ms', f'{i99:.2f}'),
              ('clock_wait_p99_ms', f'{stats.clock_wait_p99_ms():.2f}'),
              ('achieved_rate_hz', f'{stats.meter.rate_hz():.2f}'),
              ('control_rate_hz', f'{1 / period:g}'), ('ticks', loop.ticks),
              ('actions', loop.actions), ('inferences', stats.inferences),
              ('overruns', stats.overruns),
              ('overruns_per_minute', f'{stats.overrun_rate.per_minute(now):.2f}'),
              ('holds', loop.holds), ('faults', faults.total),
              ('num_threads', num_threads),
              ('encode_every_tick', str(encode_every_tick).lower()),
              # what the policy outputs: joint targets, or end-effector deltas turned into them
              ('action_space', 'joint' if loop.ee is None else 'ee_delta'),
              *([] if loop.ee is None else [('ik_failures', loop.ee.ik_failures)]),
              *_async_values(policy),
              ('latency_samples_ms', ','.join(f'{x:.2f}' for x in stats.meter.take_pending())),
              ('inference_samples_ms',
               ','.join(f'{x:.2f}' for x in stats.inference_meter.take_pending()))]
    values += [(f'fault: {kind}', count) for kind, count in faults.counts.items()]
    return level, message, values


def _async_values(policy: Any) -> list[tuple[str, Any]]:
    if policy is None or not hasattr(policy, 'stitcher'):
        return [('inference', 'sync')]
    ms = np.asarray(policy.inference_ms) if policy.inference_ms else np.zeros(1)
    return [('inference', 'async'), ('stitching', policy.stitcher.mode),
            ('async_inferences', policy.inferences),
            ('async_inference_p50_ms', f'{np.percentile(ms, 50):.2f}'),
            ('async_inference_p99_ms', f'{np.percentile(ms, 99):.2f}'),
            ('inference_errors', policy.errors), ('worker_restarts', policy.restarts),
            ('chunks_discarded', policy.discarded), ('chunks_refused', policy.stitcher.refused)]
