"""The command gate's settings and its messages to the node, with no ROS import.

:class:`GateConfig` holds what ``safety.yaml`` (``command_gate``) and ``robot.yaml`` set, checked;
:func:`tighten` applies a run-time change of the limits in :data:`RUNTIME_LIMITS` (they may
only be tightened while the node runs).  :class:`Trajectory` and :class:`GateOutput` are what
:class:`vla_safety.gate.GateCore` hands the node to publish and log.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_safety.rules import SafetyConfigError, SafetyLimits, tightening_fault


@dataclass(frozen=True)
class GateConfig:
    """The gate's settings (``safety.yaml``: ``command_gate``)."""

    # joint names, bounds (targets are clipped into them), max_velocity, and the measured-state
    # limits (position_limit, velocity_limit) that latch the stop
    limits: SafetyLimits
    max_acceleration: np.ndarray  # (N,) deceleration of a controlled stop (rad/s^2, m/s^2)
    rate: float = 30.0  # control rate (Hz): the most a path may move at once is one tick's worth
    require_monitor: bool = True  # forward nothing until a heartbeat says the monitor runs
    reanchor_time: float = 0.15  # s at max_velocity: a joint further off its command re-anchors
    jump_time: float = 0.1  # s at max_velocity: a bigger step between two states is a jump
    hold_time: float = 1.0 / 30.0  # time_from_start of a one-point hold
    joint_state_timeout: float = 0.15  # s (node clock): an older measured position is stale
    heartbeat_timeout: float = 0.125  # s (steady): a silent monitor for longer holds the robot
    heartbeat_latch_timeout: float = 1.0  # s (steady): ... and for longer latches the stop
    deadman_timeout: float = 0.0  # s (steady): an operator deadman silent for longer holds; 0: off

    def __post_init__(self) -> None:
        accel = np.asarray(self.max_acceleration, dtype=np.float64).reshape(-1)
        if accel.size == 1:
            accel = np.full(self.limits.n, float(accel[0]))
        if accel.size != self.limits.n or not np.all(np.isfinite(accel)) or np.any(accel <= 0):
            raise SafetyConfigError(f'max_acceleration must be one finite value > 0 or one per '
                                    f'joint ({self.limits.n}), got {accel.tolist()}')
        object.__setattr__(self, 'max_acceleration', accel)
        positive = {'rate': self.rate, 'hold_time': self.hold_time,
                    'joint_state_timeout': self.joint_state_timeout,
                    'heartbeat_timeout': self.heartbeat_timeout,
                    'heartbeat_latch_timeout': self.heartbeat_latch_timeout}
        nonnegative = {'reanchor_time': self.reanchor_time, 'jump_time': self.jump_time,
                       'deadman_timeout': self.deadman_timeout}
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise SafetyConfigError(f'{name} must be finite and > 0, got {value!r}')
        for name, value in nonnegative.items():
            if not (math.isfinite(value) and value >= 0):
                raise SafetyConfigError(f'{name} must be finite and >= 0, got {value!r}')
        if self.heartbeat_latch_timeout < self.heartbeat_timeout:
            raise SafetyConfigError(f'heartbeat_latch_timeout ({self.heartbeat_latch_timeout}) '
                                    f'must be >= heartbeat_timeout ({self.heartbeat_timeout})')

    @property
    def tick(self) -> float:
        return 1.0 / self.rate


@dataclass(frozen=True)
class Trajectory:
    """A command for the robot: ``positions[k]`` due ``times[k]`` s after it starts."""

    times: np.ndarray  # (P,) time_from_start, s, increasing
    positions: np.ndarray  # (P, N) robot joint order
    # node time (s) the rate limit planned it from: stamp it with this, not a later clock
    # reading (a later, varying stamp would shift some targets later than others and so
    # speed the path up between them); None: unknown
    start: float | None = None


@dataclass
class GateOutput:
    """What one call asks the node to do."""

    trajectory: Trajectory | None = None  # forward to the robot
    stop_request: str = ''  # ask the monitor to latch a stop (heartbeat.stop_request JSON)
    log: list[tuple[str, str]] = field(default_factory=list)  # (level, message)


#: what the gate counts (GateCore.counts), in the order /diagnostics reports them
COUNTS = ('forwarded', 'clipped', 'rate_limited', 'reanchored', 'state_jumps', 'blocked', 'holds',
          'estops', 'stale_holds', 'ignored_clears', 'clock_jumps', 'own_stalls', 'limit_stops')

#: parameters that may change at run time, and which direction widens them
RUNTIME_LIMITS = {'max_velocity': 'larger', 'max_acceleration': 'larger',
                  'joint_lower': 'smaller', 'joint_upper': 'larger',
                  'position_limit': 'larger', 'velocity_limit': 'larger',
                  'joint_state_timeout': 'larger', 'heartbeat_timeout': 'larger',
                  'heartbeat_latch_timeout': 'larger'}


def runtime_values(config: GateConfig) -> dict[str, Any]:
    """The current value of every parameter in :data:`RUNTIME_LIMITS`."""
    limits = config.limits
    return {'max_velocity': limits.max_velocity, 'max_acceleration': config.max_acceleration,
            'joint_lower': limits.lower, 'joint_upper': limits.upper,
            'position_limit': limits.position_limit, 'velocity_limit': limits.velocity_limit,
            'joint_state_timeout': config.joint_state_timeout,
            'heartbeat_timeout': config.heartbeat_timeout,
            'heartbeat_latch_timeout': config.heartbeat_latch_timeout}


def tighten(config: GateConfig, changes: dict[str, Any]) -> GateConfig | str:
    """``config`` with run-time ``changes`` applied, or why they are refused (a parameter read
    at start-up only, a widened limit, or values that do not check)."""
    current = runtime_values(config)
    for name, value in changes.items():
        if name not in RUNTIME_LIMITS:
            return f'{name} is read at start-up only'
        refusal = tightening_fault(name, np.atleast_1d(current[name]), value, RUNTIME_LIMITS[name])
        if refusal:
            return refusal
    merged = {**current, **changes}
    try:
        new_limits = SafetyLimits.from_values(
            config.limits.joint_names, merged['joint_lower'], merged['joint_upper'],
            merged['max_velocity'], merged['position_limit'], merged['velocity_limit'])
        return dataclasses.replace(
            config, limits=new_limits, max_acceleration=merged['max_acceleration'],
            joint_state_timeout=float(merged['joint_state_timeout']),
            heartbeat_timeout=float(merged['heartbeat_timeout']),
            heartbeat_latch_timeout=float(merged['heartbeat_latch_timeout']))
    except (SafetyConfigError, TypeError, ValueError) as exc:
        return str(exc)
