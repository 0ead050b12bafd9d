"""The safety monitor's state machine, with no ROS import (the node only converts messages).

:class:`MonitorCore` checks measured joint states against position and velocity limits,
watches that they keep coming, latches the emergency stop, answers resets and triggers and
restates its state as a :class:`~vla_safety.heartbeat.Heartbeat`.  ``now`` is a monotonic
wall clock in seconds (the watchdog must fire even when the simulated clock stops).

* Velocities come from the driver; where it publishes none (or NaN, as ros2_control's
  joint_state_broadcaster does for a missing interface) they are estimated from the positions
  and their stamps, so every joint keeps a velocity check and a NaN velocity never latches a
  stop that cannot be reset.
* A non-finite measured position is a violation: it latches, and the reset is accepted once
  finite positions are back within the limits.
* The limits can only be tightened while the node runs.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_safety.heartbeat import Heartbeat, new_session, parse_stop_request
from vla_safety.rules import (Fault, FaultLog, SafetyConfigError, SafetyLimits,
                              VelocityEstimator, check_joint_state, fill_velocities,
                              joint_state_arrays, tightening_fault)


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor's settings (``safety.yaml``: ``safety_monitor``)."""

    limits: SafetyLimits  # position_limit and velocity_limit are the ones checked
    joint_state_timeout: float = 0.5  # s without a usable joint state latches the stop
    start_latched: bool = False  # start stopped: the operator resets once the robot is ready

    def __post_init__(self) -> None:
        if not (math.isfinite(self.joint_state_timeout) and self.joint_state_timeout > 0):
            raise SafetyConfigError(f'joint_state_timeout must be finite and > 0, '
                                    f'got {self.joint_state_timeout!r}')


@dataclass
class MonitorOutput:
    """What one call asks the node to do."""

    estop: str | None = None  # publish on /emergency_stop (a reason, or '' on reset) + a heartbeat
    log: list[tuple[str, str]] = field(default_factory=list)  # (level, message)


#: parameters that may change at run time; all of them widen when they grow
RUNTIME_LIMITS = ('position_limit', 'velocity_limit', 'joint_state_timeout')


class MonitorCore:
    """The safety monitor without ROS."""

    def __init__(self, config: MonitorConfig, session: str | None = None) -> None:
        self.config = config
        self.session = session or new_session()
        self.seq = -1
        self.stopped = ''  # latched reason; '' = not stopped
        self.violation: Fault | None = None  # what the latest state (or the watchdog) says now
        self.last_state: float | None = None  # time of the last usable joint state
        self.q: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.velocity = VelocityEstimator(max_gap=config.joint_state_timeout)
        self.faults = FaultLog()
        self.counts = dict.fromkeys(('estops', 'resets', 'refused_resets', 'joint_states',
                                     'estimated_velocities', 'stop_requests'), 0)

    def start(self) -> MonitorOutput:
        """The state to announce at start-up (latched with ``start_latched``)."""
        if self.config.start_latched:
            return self._trip(Fault('start-up', 'started latched (start_latched): call '
                                    '/emergency_stop/reset once the robot is ready'))
        return MonitorOutput(estop='')

    def heartbeat(self) -> Heartbeat:
        """The next heartbeat of this session (its ``seq`` increases by one per call)."""
        self.seq += 1
        return Heartbeat(session=self.session, seq=self.seq, stopped=bool(self.stopped),
                         reason=self.stopped, resets=self.counts['resets'],
                         watching=self.last_state is not None)

    # -- inputs -----------------------------------------------------------------------------
    def on_joint_state(self, names: Sequence[str], positions: Sequence[float],
                       velocities: Sequence[float], stamp: float | None,
                       now: float) -> MonitorOutput:
        """A measured joint state; ``stamp`` (s, its header; None or 0: unknown) dates it for the
        velocity estimate, ``now`` for the watchdog."""
        out = MonitorOutput()
        arrays = joint_state_arrays(names, positions, velocities, self.config.limits)
        if isinstance(arrays, Fault):
            # not a limit violation by itself; the watchdog trips if no usable state follows
            self._fault(arrays, out, 'ignored joint state')
            return out
        q, v = arrays
        estimate = self.velocity.update(stamp if stamp else now, q)
        if v is None or not np.all(np.isfinite(v)):
            if v is not None:
                bad = [self.config.limits.joint_names[j] for j in np.flatnonzero(~np.isfinite(v))]
                self._fault(Fault('non-finite joint velocity', f'non-finite velocity of {bad}: '
                                  'checking the velocity estimated from the positions instead'),
                            out, 'joint state')
            self.counts['estimated_velocities'] += 1
            v = fill_velocities(v, estimate, q)
        self.q, self.v, self.last_state = q, v, now
        self.counts['joint_states'] += 1
        self.violation = check_joint_state(q, v, self.config.limits)
        if self.violation is not None and not self.stopped:
            return self._trip(self.violation)
        return out

    def watchdog(self, now: float) -> MonitorOutput:
        """Timer: no usable joint state for ``joint_state_timeout`` latches the stop."""
        if self.last_state is None:
            return MonitorOutput()  # armed by the first joint state
        age = now - self.last_state
        if age > self.config.joint_state_timeout:
            self.violation = Fault('joint state watchdog', f'no usable /joint_states for '
                                   f'{age:.2f} s (timeout {self.config.joint_state_timeout:g} s)')
            if not self.stopped:
                return self._trip(self.violation)
        return MonitorOutput()

    def trigger(self, reason: str) -> tuple[str, MonitorOutput]:
        """A manual stop (/emergency_stop/trigger); returns the answer and the output."""
        if self.stopped:
            return f'already stopped: {self.stopped}', MonitorOutput()
        return 'stopped', self._trip(Fault('manual', reason))

    def on_stop_request(self, text: str) -> MonitorOutput:
        """The command gate latched a stop on its own (e.g. the heartbeat was lost): latch it
        here too, so that the operator sees it and resets it through the usual path.  A
        request made for another session or before the last reset (still in flight when the
        operator reset) is ignored; plain text stops the robot (fail safe)."""
        reason, session, resets = parse_stop_request(text)
        if not reason or self.stopped:
            return MonitorOutput()
        if session is not None and (session != self.session or resets != self.counts['resets']):
            self.faults.add('stale stop request')
            return MonitorOutput()
        self.counts['stop_requests'] += 1
        return self._trip(Fault('command gate', f'command gate: {reason}'))

    def reset(self, now: float) -> tuple[bool, str, MonitorOutput]:
        """/emergency_stop/reset: accepted only once the violation has cleared."""
        out = MonitorOutput()
        if not self.stopped:
            return True, 'no emergency stop is latched', out
        if self.q is not None:  # judged by the limits in force now (they may have changed)
            self.violation = check_joint_state(self.q, self.v, self.config.limits)
        self.watchdog(now)
        if self.last_state is None:
            reason = 'no /joint_states received: cannot tell whether the violation has cleared'
        elif self.violation is not None:
            reason = f'the violation persists: {self.violation.reason}'
        else:
            previous, self.stopped = self.stopped, ''
            self.counts['resets'] += 1
            out.estop = ''
            out.log.append(('warn', f'emergency stop reset by a call to /emergency_stop/reset '
                                    f'(it was: {previous})'))
            return True, f'reset (was: {previous})', out
        self.counts['refused_resets'] += 1
        out.log.append(('warn', f'emergency stop reset refused: {reason}'))
        return False, f'reset refused: {reason}', out

    # -- parameters -------------------------------------------------------------------------
    def set_parameters(self, changes: dict[str, Any]) -> str | None:
        """Apply run-time changes, or say why not (limits can only be tightened)."""
        limits = self.config.limits
        current = {'position_limit': limits.position_limit, 'velocity_limit': limits.velocity_limit,
                   'joint_state_timeout': self.config.joint_state_timeout}
        for name, value in changes.items():
            if name not in RUNTIME_LIMITS:
                return f'{name} is read at start-up only'
            refusal = tightening_fault(name, np.atleast_1d(current[name]), value)
            if refusal:
                return refusal
        merged = {**current, **changes}
        try:
            new_limits = SafetyLimits.from_values(
                limits.joint_names, limits.lower, limits.upper, limits.max_velocity,
                merged['position_limit'], merged['velocity_limit'])
            self.config = dataclasses.replace(
                self.config, limits=new_limits,
                joint_state_timeout=float(merged['joint_state_timeout']))
        except (SafetyConfigError, TypeError, ValueError) as exc:
            return str(exc)
        return None

    # -- internals --------------------------------------------------------------------------
    def _fault(self, fault: Fault, out: MonitorOutput, what: str) -> None:
        if self.faults.add(fault):
            out.log.append(('warn', f'{what}: {fault.reason} (further {fault.kind!r} faults are '
                                    'counted in /diagnostics)'))

    def _trip(self, fault: Fault) -> MonitorOutput:
        self.stopped = fault.reason
        self.counts['estops'] += 1
        return MonitorOutput(estop=fault.reason, log=[('error', f'EMERGENCY STOP: {fault.reason}')])
