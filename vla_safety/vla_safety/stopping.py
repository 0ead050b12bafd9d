"""The controlled stop, with no ROS import: where a stop starts and its braking profile.

The command gate holds the robot with these (:meth:`vla_safety.gate.GateCore._stop`): from
the measured state moved on to now (:func:`measured_now`), a trapezoidal deceleration within
``max_acceleration`` and ``max_velocity`` to rest inside the bounds (:func:`stop_trajectory`),
or one point at ``hold_time`` for a robot already at rest there (:func:`stop_path`).
"""
from __future__ import annotations

import numpy as np

from vla_safety.rules import sample_trajectory


def measured_now(q: np.ndarray, v: np.ndarray | None, age: float, max_velocity: np.ndarray,
                 commanded: np.ndarray | None) -> np.ndarray:
    """Where the robot is now by its measurement ``q`` taken ``age`` s ago: moved on by the
    measured velocity ``v`` (clipped to ``max_velocity``; None: at rest) for that age, but per
    joint not past the ``commanded`` position (a robot lags its command: the command is closer
    when it lies between the measurement and the extrapolation; a joint measured at or beyond
    its command stays where measured).  Under load the measurement lags the robot by latency x
    speed; a stop from the bare measurement would command the arm back by that much."""
    velocity = np.zeros_like(q) if v is None else np.clip(v, -max_velocity, max_velocity)
    ahead = velocity * age
    if commanded is not None:
        # not past the command: a robot measured at or beyond it is held where measured
        toward = (commanded - q) * np.sign(ahead)
        ahead = np.sign(ahead) * np.minimum(np.abs(ahead), np.maximum(toward, 0.0))
    return q + ahead


def stop_trajectory(start: np.ndarray, velocity: np.ndarray, lower: np.ndarray,
                    upper: np.ndarray, max_velocity: np.ndarray, max_acceleration: np.ndarray,
                    dt: float, max_time: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """A controlled stop: from ``start`` moving at ``velocity`` to rest inside the bounds.

    Each joint decelerates at ``max_acceleration`` to where it comes to rest (its braking
    distance ahead), then, if that point is outside ``[lower, upper]``, moves to the nearest
    bound with speed at most ``max_velocity`` and acceleration at most ``max_acceleration``
    (a trapezoidal profile, sampled every ``dt``).  The last point is inside the bounds; a
    joint that starts outside them moves back from where it is, never further out.  Returns
    ``(times (P,), points (P, N))`` with ``times = dt, 2 dt, ...``; a joint at rest inside the
    bounds stays where it is (a robot at rest gets one point: ``start``).
    """
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f'dt must be finite and > 0, got {dt}')
    x = np.asarray(start, dtype=np.float64).copy()
    vmax = np.asarray(max_velocity, dtype=np.float64)
    amax = np.asarray(max_acceleration, dtype=np.float64)
    v = np.clip(np.nan_to_num(np.asarray(velocity, dtype=np.float64)), -vmax, vmax)
    if not np.all(np.isfinite(x)):
        raise ValueError(f'a stop must start at a finite position, got {x.tolist()}')
    # braking distance in steps of dt at amax: v dt + (v - a dt) dt + ... = v^2 / 2a + v dt / 2
    target = np.clip(x + v * (np.abs(v) / (2.0 * amax) + dt / 2.0), lower, upper)
    # a joint already outside its bounds moves back from where it is (never jumps to the bound)
    envelope_low, envelope_high = np.minimum(lower, x), np.maximum(upper, x)
    points = []
    for _ in range(max(1, int(np.ceil(max_time / dt)))):
        error = target - x
        if np.all(np.abs(error) < 1e-9) and np.all(np.abs(v) <= amax * dt + 1e-12):
            break
        # the fastest speed from which the joint can still brake to the target at amax in
        # steps of dt (the inverse of the braking distance above), and no faster than reaching
        # the target within this step
        brake = np.sqrt((amax * dt / 2.0) ** 2 + 2.0 * amax * np.abs(error)) - amax * dt / 2.0
        wanted = np.sign(error) * np.minimum.reduce([vmax, brake, np.abs(error) / dt])
        v = np.clip(wanted, v - amax * dt, v + amax * dt)
        x = np.clip(x + v * dt, envelope_low, envelope_high)
        points.append(x.copy())
    if not points:
        return np.array([dt]), x[None]
    points[-1] = target
    return dt * np.arange(1, len(points) + 1), np.array(points)


def path_velocity(start: np.ndarray, times: np.ndarray, positions: np.ndarray, elapsed: float,
                  dt: float = 1e-3) -> np.ndarray:
    """The speed of a trajectory that left ``start`` ``elapsed`` s ago (zero once it has ended)."""
    ahead = sample_trajectory(start, times, positions, elapsed + dt)
    return (ahead - sample_trajectory(start, times, positions, elapsed)) / dt


def stop_path(start: np.ndarray, velocity: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              max_velocity: np.ndarray, max_acceleration: np.ndarray, tick: float,
              hold_time: float) -> tuple[np.ndarray, np.ndarray]:
    """The stop to send: :func:`stop_trajectory` sampled every ``tick``, or, for a robot at
    rest inside the bounds, one point at ``start`` due after ``hold_time``."""
    times, points = stop_trajectory(start, velocity, lower, upper, max_velocity,
                                    max_acceleration, tick)
    if len(times) == 1 and np.allclose(points[0], start, atol=1e-12):
        times = np.array([hold_time])  # at rest inside the bounds: hold where it is
    return times, points
