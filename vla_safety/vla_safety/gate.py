"""The command gate's state machine, with no ROS import (the node only converts messages).

:class:`GateCore` decides what reaches the robot: it checks, reorders, clips and rate-limits
requested commands, holds the robot with a controlled stop, and follows the safety monitor's
heartbeat (:mod:`vla_safety.heartbeat`).  Every method takes ``now``, the node clock in seconds
(sim time in simulation), and, for liveness, ``steady``, a monotonic wall clock in seconds; it
returns a :class:`GateOutput` that says what to publish and what to log.  Arrays are in the
robot's joint order.  Its settings (:class:`GateConfig`, the run-time tightening) and output
types are in :mod:`vla_safety.gate_config`.

Rules (docs/safety.md has the reasons):

* rate limit by time: the first point of a command may move ``max_velocity`` times its
  ``time_from_start`` or, when that is shorter, the time the commanded path has been at rest
  (at most one tick, ``1 / rate``) from where the robot is commanded to be now; a source that
  publishes faster than ``rate`` gains nothing;
* re-anchor to the measured position only when it is fresh (``joint_state_timeout``, by its
  arrival and its stamp); with a stale measurement commands are refused and the robot holds;
* a measured step is a jump (hold where measured) only when larger than the arm could have
  driven in the time between the two states plus ``jump_time``;
* a non-finite measured position latches the stop (the robot holds its last finite command);
* a measured state beyond ``position_limit`` or ``velocity_limit`` (the monitor's rule, checked
  here too) latches the stop at once, one hop sooner than the monitor's /emergency_stop and
  before any command queued behind that joint state can be forwarded;
* a stop is a controlled stop (:mod:`vla_safety.stopping`): decelerate within
  ``max_acceleration`` and ``max_velocity`` and hold inside the bounds; a robot at rest
  inside the bounds holds its measured position; a joint measured more than a tick ago that
  followed its command brakes from the command;
* forwarding again after a hold goes on from the hold's stop while it brakes;
* a late heartbeat (``heartbeat_timeout``) holds the robot until the same monitor session is
  heard again; a latched stop (heartbeat stopped, silent for ``heartbeat_latch_timeout`` or
  from a new session, a reason on /emergency_stop, a non-finite joint state) clears only on a
  heartbeat after a reset of the monitor.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

# the settings and the output types live in gate_config; importable from here as before
from vla_safety.gate_config import (COUNTS, RUNTIME_LIMITS, GateConfig, GateOutput, Trajectory,
                                    tighten)
from vla_safety.heartbeat import Heartbeat, stop_request
from vla_safety.rules import (Fault, FaultLog, VelocityEstimator, check_command, check_joint_state,
                              check_times, clip_to_bounds, fill_velocities, joint_state_arrays,
                              limit_trajectory, sample_trajectory, to_robot_order)
from vla_safety.stopping import measured_now, path_velocity, stop_path

__all__ = ['GateConfig', 'GateCore', 'GateOutput', 'RUNTIME_LIMITS', 'Trajectory']


class GateCore:
    """The command gate without ROS: ``on_*`` for inputs, ``check`` from a timer."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.faults = FaultLog()
        self.counts = dict.fromkeys(COUNTS, 0)
        # measured state (the last finite one) and when it arrived (node clock)
        self.q: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.q_time: float | None = None
        self.q_stamp: float | None = None  # its header stamp (node clock), when it had one
        self.velocity = VelocityEstimator(max_gap=config.joint_state_timeout)
        # the last forwarded trajectory: start positions, times, points, when (node clock)
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        # the trajectories forwarded over the last 2 joint_state_timeout (and the one before),
        # oldest first: where the robot was commanded to be when a measurement was taken
        self.history: deque[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = deque()
        self.path_end = -math.inf  # node time at which the last forwarded path ends
        self.last_now = -math.inf
        self.stale_held = False
        # the monitor we follow, and the latch
        self.session: str | None = None
        self.seq = -1
        self.monitor_stopped: bool | None = None
        self.monitor_resets: int | None = None
        self.monitor_watching = True  # the monitor has a joint state (see Heartbeat.watching)
        self.monitor_reasons: set[str] = set()  # stops the followed session has stated
        self.last_heartbeat: float | None = None  # steady time
        self.last_check: float | None = None  # steady time of the last check()
        self.latched = ''  # why the gate holds until a reset; '' = not latched
        self.silent = False  # holding: the heartbeat is late (not latched yet)
        self.latch_resets: int | None = None  # the monitor's reset count when it latched
        self.deadman_at: float | None = None  # steady time of the last "pressed"
        self.deadman_ok = config.deadman_timeout == 0

    # -- state ------------------------------------------------------------------------------
    def blocked_reason(self) -> str:
        """Why commands are not forwarded now ('' when they are)."""
        if self.latched:
            return f'emergency stop: {self.latched}'
        if self.config.require_monitor and self.session is None:
            return 'waiting for the safety monitor (its heartbeat on /safety/heartbeat)'
        if self.silent:
            return 'the safety heartbeat is late'
        if self.config.require_monitor and not self.monitor_watching:
            return 'the safety monitor has no /joint_states yet: it cannot see a violation'
        if not self.deadman_ok:
            return 'operator deadman released or silent'
        return ''

    def fresh(self, now: float) -> bool:
        """Whether the measured position is recent enough to re-anchor to."""
        return self.q_time is not None and 0.0 <= now - self.q_time <= self.config.joint_state_timeout

    # -- inputs -----------------------------------------------------------------------------
    def on_joint_state(self, names: Sequence[str], positions: Sequence[float],
                       velocities: Sequence[float], now: float,
                       stamp: float | None = None) -> GateOutput:
        """A measured state; ``stamp`` (its header, s; None: unknown) dates it for the
        velocity estimate used where the driver publishes no velocities."""
        out = GateOutput()
        self._clock(now, out)
        arrays = joint_state_arrays(names, positions, velocities, self.config.limits)
        if isinstance(arrays, Fault):
            self._fault(arrays, out)
            return out
        q, v = arrays
        if not np.all(np.isfinite(q)):
            bad = [self.config.limits.joint_names[j] for j in np.flatnonzero(~np.isfinite(q))]
            self._fault(Fault('non-finite joint state', f'non-finite measured position of {bad}: '
                              f'{q.tolist()}'), out)
            self._latch(f'non-finite joint state: measured position of {bad} is {q.tolist()}',
                        now, out, from_reference=True)
            return out
        estimate = self.velocity.update(stamp if stamp else now, q)
        estimated = v is None or not np.all(np.isfinite(v))
        if estimated:
            v = fill_velocities(v, estimate, q)
        # a step the robot could not have driven in the time between the two states (by their
        # stamps when both have one, else by arrival): a gate that took no state for a while
        # (busy, descheduled) sees a driven arm move far between the two it takes
        jumped = self.fresh(now) and np.any(
            np.abs(q - self.q) > self._jump + self.config.limits.max_velocity
            * self._between(now, stamp))
        if jumped and estimated:
            v = np.zeros_like(q)  # a difference across a jump is no velocity: hold, not brake
        self.q, self.v, self.q_time, self.q_stamp = q, v, now, stamp or None
        self.stale_held = False
        violation = None if self.latched else check_joint_state(q, v, self.config.limits)
        if violation is not None:
            # the monitor latches on this same state too, one hop later (its /emergency_stop
            # or heartbeat must reach this node first): stop now, from this measurement
            self.counts['limit_stops'] += 1
            self._latch(f'{violation.reason} (seen by the command gate)', now, out,
                        from_measurement=True)
            return out
        if jumped:
            # moved, not driven (a simulator reset, a hand-guided arm): hold where it is now, so
            # that a command aimed at where it was is superseded, and rate-limit from here on
            self.counts['state_jumps'] += 1
            if self.last is not None and not self.blocked_reason():
                self.last = None
                out.trajectory = self._stop(now)
        return out

    def on_command(self, names: Sequence[str], rows: Sequence[Sequence[float]],
                   times: Sequence[float], now: float) -> GateOutput:
        """A requested command: forward a checked, clipped, rate-limited one (or nothing)."""
        out = GateOutput()
        self._clock(now, out)
        if self.blocked_reason():
            self.counts['blocked'] += 1
            return out
        times = np.asarray(times, dtype=np.float64)
        fault = check_command(names, rows, self.config.limits) or check_times(times)
        if fault is not None:
            self._fault(fault, out)
            return out
        if self.q is None:
            self._fault(Fault('no joint state', 'no /joint_states received yet: cannot '
                              'rate-limit a command without knowing where the robot is'), out)
            return out
        if not self.fresh(now):
            age = 'of unknown age' if self.q_time is None else f'{now - self.q_time:.3f} s old'
            self._fault(Fault('stale joint state', f'the last joint state is {age} '
                              f'(joint_state_timeout {self.config.joint_state_timeout:g} s): '
                              'holding'), out)
            if not self.stale_held:
                self.stale_held = True
                if now < self.path_end:
                    # cut the running trajectory short where it commands the robot to be now;
                    # one that has ended is held by the robot already (never re-send an old
                    # position: the robot may have been moved since, e.g. a simulator reset)
                    self.counts['stale_holds'] += 1
                    out.trajectory = self._stop(now)
            return out
        limits = self.config.limits
        reference = self._reference(now)
        targets, outside = clip_to_bounds(to_robot_order(names, rows, limits), limits)
        # a first point due sooner than one tick may move as far as the time the commanded
        # path has been at rest (reached its last point), at most one tick: a source that
        # publishes faster than that earns nothing, a late command catches up nothing
        credit = min(max(now - self.path_end, 0.0), self.config.tick)
        targets, limited = limit_trajectory(reference, times, targets, limits.max_velocity,
                                            max(float(times[0]), credit))
        self.counts['clipped'] += bool(outside.any())
        self.counts['rate_limited'] += limited
        out.trajectory = self._forward(reference, times, targets, now)
        return out

    def on_heartbeat(self, beat: Heartbeat, steady: float, now: float) -> GateOutput:
        """The monitor's restated state (see :mod:`vla_safety.heartbeat`)."""
        out = GateOutput()
        if beat.session == self.session and beat.seq <= self.seq:
            self.faults.add('old heartbeat')  # repeated or reordered: proves nothing
            return out
        if self.session is None:
            out.log.append(('info', f'following safety monitor session {beat.session}'))
            if self.latched and self.latch_resets is None:
                self.latch_resets = beat.resets
        elif beat.session != self.session:
            old = self.session
            self.session = beat.session
            self.silent = False
            self.monitor_reasons = set()
            self._latch(f'the safety monitor restarted (session {old} -> {beat.session}); '
                        'reset the emergency stop (/emergency_stop/reset) to go on', now, out)
            self.latch_resets = beat.resets  # a reset of the new session clears it
        self.session, self.seq, self.last_heartbeat = beat.session, beat.seq, steady
        self.monitor_stopped, self.monitor_resets = beat.stopped, beat.resets
        if beat.watching != self.monitor_watching:
            if beat.watching:
                self._resume(now)
                out.log.append(('info', 'the safety monitor sees /joint_states: forwarding'))
            else:
                out.log.append(('warn', 'the safety monitor has no /joint_states yet: holding '
                                        'until it sees the robot'))
                if not self.latched:
                    out.trajectory = self._stop(now)
            self.monitor_watching = beat.watching
        if beat.stopped:
            self.monitor_reasons.add(beat.reason.strip())
            self._latch(beat.reason or 'the safety monitor reports a stop', now, out,
                        resets=beat.resets, request=False)
        elif self.latched and self.latch_resets is not None and beat.resets > self.latch_resets:
            out.log.append(('warn', f'emergency stop cleared by a reset of the safety monitor '
                                    f'(it was: {self.latched}): forwarding commands again'))
            self.latched, self.latch_resets = '', None
            self._resume(now)
        elif self.latched:  # the monitor has not latched it yet
            out.stop_request = stop_request(self.latched, self.session, self.monitor_resets)
        if self.silent and not beat.stopped:
            # the same monitor is back in time, saying all is well: a stall, not a death
            self.silent = False
            self._resume(now)
            out.log.append(('warn', 'safety heartbeat back: forwarding commands again'))
        return out

    def on_estop(self, reason: str, now: float) -> GateOutput:
        """A message on the latched /emergency_stop: a reason stops; '' clears nothing."""
        out = GateOutput()
        reason = reason.strip()
        if reason in self.monitor_reasons:
            # the monitor's own stop, already stated (and maybe reset since) in its heartbeat,
            # which is the authority: a late copy on this topic must not latch again
            return out
        if reason:
            self._latch(reason, now, out)
        elif self.latched:
            self.counts['ignored_clears'] += 1
            if self.counts['ignored_clears'] == 1:  # the monitor's own '' on reset comes here too
                out.log.append(('info', "'' on /emergency_stop clears nothing: the stop clears "
                                        "on the safety monitor's heartbeat after a reset (further "
                                        "ones are counted in /diagnostics)"))
        return out

    def on_deadman(self, pressed: bool, steady: float, now: float | None = None) -> GateOutput:
        """The operator's deadman (a console or joystick heartbeat): True while held."""
        self.deadman_at = steady if pressed else None
        out = GateOutput()
        if pressed and not self.deadman_ok and self.config.deadman_timeout > 0:
            self.deadman_ok = True
            self._resume(self.last_now if now is None else now)
            out.log.append(('info', 'operator deadman held: forwarding commands'))
        return out

    def check(self, steady: float, now: float) -> GateOutput:
        """Timer: a silent monitor latches the stop; a silent deadman holds."""
        out = GateOutput()
        cfg = self.config
        stalled = self.last_check is not None and steady - self.last_check > cfg.heartbeat_timeout / 2
        self.last_check = steady
        if stalled:
            # the gate itself did not run (CPU starvation, a debugger): heartbeats may be queued
            # unread, so judge at the next check, after they have been taken
            self.counts['own_stalls'] += 1
            return out
        age = None if self.last_heartbeat is None else steady - self.last_heartbeat
        if cfg.require_monitor and age is not None and not self.latched:
            if age > cfg.heartbeat_latch_timeout:
                self.silent = False
                self._latch(f'safety heartbeat lost: none for {age:.3f} s '
                            f'(heartbeat_latch_timeout {cfg.heartbeat_latch_timeout:g} s)', now, out)
            elif age > cfg.heartbeat_timeout and not self.silent:
                self.silent = True
                out.log.append(('warn', f'safety heartbeat late: none for {age:.3f} s '
                                        f'(heartbeat_timeout {cfg.heartbeat_timeout:g} s): holding; '
                                        f'latched after {cfg.heartbeat_latch_timeout:g} s'))
                out.trajectory = self._stop(now)
        if cfg.deadman_timeout > 0 and self.deadman_ok and (
                self.deadman_at is None or steady - self.deadman_at > cfg.deadman_timeout):
            self.deadman_ok = False
            out.log.append(('warn', 'operator deadman released or silent: holding'))
            if not self.latched:
                out.trajectory = self._stop(now)
        return out

    def shutdown(self, now: float) -> Trajectory | None:
        """The controlled stop to send when the gate goes away."""
        return self._stop(now)

    # -- parameters -------------------------------------------------------------------------
    def set_parameters(self, changes: dict[str, Any]) -> str | None:
        """Apply run-time changes, or say why not (only tightening is allowed)."""
        result = tighten(self.config, changes)
        if isinstance(result, str):
            return result
        self.config = result
        return None

    # -- internals --------------------------------------------------------------------------
    @property
    def _jump(self) -> np.ndarray:
        return self.config.limits.max_velocity * self.config.jump_time

    def _between(self, now: float, stamp: float | None) -> float:
        """The time (s) between the last measured state and one measured at ``stamp`` that
        arrives ``now``: by the two stamps when both have one, else by arrival."""
        if stamp and self.q_stamp is not None:
            return max(stamp - self.q_stamp, 0.0)
        return max(now - self.q_time, 0.0)

    def _clock(self, now: float, out: GateOutput) -> None:
        """A clock that runs backwards (a sim time reset) invalidates every time we kept."""
        if now < self.last_now:
            self.counts['clock_jumps'] += 1
            out.log.append(('warn', f'the clock jumped back by {self.last_now - now:.3f} s: '
                                    'waiting for a fresh joint state'))
            self.last, self.q_time, self.path_end = None, None, -math.inf
            self.history.clear()
            self.velocity.reset()
        self.last_now = now

    def _fault(self, fault: Fault, out: GateOutput) -> None:
        """Count a refused input; log each kind once (the counts go to /diagnostics)."""
        if self.faults.add(fault):
            out.log.append(('warn', f'refused: {fault.reason} (further {fault.kind!r} faults '
                                    'are counted in /diagnostics, not logged)'))

    def _reference(self, now: float) -> np.ndarray:
        """Where the robot is commanded to be now (the measured position with no command),
        with a joint far from its command (blocked, pushed) re-anchored to where it is."""
        if self.last is None:
            return self.q.copy()
        start, times, points, sent = self.last
        reference = sample_trajectory(start, times, points, now - sent)
        far = self._off_command()
        if far.any():
            self.counts['reanchored'] += 1
            reference[far] = self.q[far]
        return reference

    def _measured_at(self) -> float:
        """When the measured position was taken (node clock): its header stamp when that is
        not after its arrival, else its arrival."""
        if self.q_stamp is not None and self.q_stamp <= self.q_time:
            return self.q_stamp
        return self.q_time

    def _stamped_stale(self) -> bool:
        """The measurement arrived in time but its stamp is older than joint_state_timeout (a
        busy gate read it from its queue late, or the robot's clock lags the gate's)."""
        return self.q_stamp is not None and self.q_time - self.q_stamp > self.config.joint_state_timeout

    def _commanded_at(self, t: float) -> np.ndarray | None:
        """Where the robot was commanded to be at node time ``t`` (None: nothing forwarded
        since before the kept history)."""
        for start, times, points, sent in reversed(self.history):
            if sent <= t:
                return sample_trajectory(start, times, points, t - sent)
        return self.history[0][0].copy() if self.history else None

    def _off_command(self) -> np.ndarray:
        """Per joint: the measurement is far (reanchor_time at max_velocity) from where the
        robot was commanded to be when it was measured (blocked, pushed).  Like with like: a
        state up to joint_state_timeout old lags the newest command by then, which is no
        reason to snap back; one stamped older than that is no place to snap back to."""
        if self._stamped_stale():
            return np.zeros(len(self.q), dtype=bool)
        then = self._commanded_at(self._measured_at())
        if then is None:
            return np.ones(len(self.q), dtype=bool)
        return np.abs(then - self.q) > self.config.limits.max_velocity * self.config.reanchor_time

    def _resume(self, now: float) -> None:
        """Forwarding again after a hold: rate-limit from where the robot is commanded to be
        while the hold's controlled stop still runs (the measurement lags a braking arm), from
        where it is measured once that has ended (it holds there; it may have been moved)."""
        if now >= self.path_end:
            self.last = None

    def _commanded(self, now: float) -> np.ndarray | None:
        """The last forwarded trajectory sampled at ``now`` (None when there is none)."""
        if self.last is None:
            return None
        start, times, points, sent = self.last
        return sample_trajectory(start, times, points, now - sent)

    def _forward(self, start: np.ndarray, times: np.ndarray, points: np.ndarray,
                 now: float) -> Trajectory:
        self.last = (start, times, points, now)
        self.history.append(self.last)
        keep = now - 2.0 * self.config.joint_state_timeout  # a stamp may predate its arrival
        while len(self.history) > 1 and self.history[1][3] <= keep:
            self.history.popleft()
        self.path_end = now + float(times[-1])
        self.counts['forwarded'] += 1
        return Trajectory(times=times, positions=points, start=now)

    def _measured_now(self, now: float, commanded: np.ndarray | None) -> np.ndarray:
        """Where the robot is now by its measurement (:func:`vla_safety.stopping.measured_now`),
        dated by its stamp when that is plausible, else by its arrival; at most one tick."""
        age = now - self.q_time
        if self.q_stamp is not None and 0.0 <= now - self.q_stamp <= self.config.joint_state_timeout:
            age = max(age, now - self.q_stamp)
        age = min(max(age, 0.0), self.config.tick)
        return measured_now(self.q, self.v, age, self.config.limits.max_velocity, commanded)

    def _stop(self, now: float, from_reference: bool = False,
              from_measurement: bool = False) -> Trajectory | None:
        """A controlled stop from the measured state, extrapolated to now (or the last command
        when that is stale or ``from_reference``; a joint that followed its command, measured
        more than a tick ago, from the command unless ``from_measurement``, a stop for what
        that measurement showed); None when there is nothing to hold."""
        commanded = self._commanded(now)
        if self.q is not None and self.fresh(now) and not from_reference:
            # brake from the measured (or estimated) speed: the robot may still be moving
            start = self._measured_now(now, commanded)
            velocity = self.v if self.v is not None else np.zeros_like(start)
            if (commanded is not None and not from_measurement
                    and now - self._measured_at() > self.config.tick):
                # a measurement older than a tick (a busy machine) of a joint that followed its
                # command says little about where it is now: it went on as commanded since,
                # and a stop from the old position would command it back.  Brake from the
                # command; a joint far from its command (blocked, pushed) stays measured.
                path_start, times, points, sent = self.last
                follows = ~self._off_command()
                start = np.where(follows, commanded, start)
                velocity = np.where(follows, path_velocity(path_start, times, points, now - sent),
                                    velocity)
        elif commanded is not None:
            path_start, times, points, sent = self.last  # brake from the commanded speed
            start, velocity = commanded, path_velocity(path_start, times, points, now - sent)
        elif self.q is not None:
            start, velocity = self.q, np.zeros_like(self.q)
        else:
            return None
        cfg = self.config
        times, points = stop_path(start, velocity, cfg.limits.lower, cfg.limits.upper,
                                  cfg.limits.max_velocity, cfg.max_acceleration, cfg.tick,
                                  cfg.hold_time)
        self.counts['holds'] += 1
        return self._forward(np.asarray(start, dtype=np.float64), times, points, now)

    def _latch(self, reason: str, now: float, out: GateOutput, resets: int | None = None,
               request: bool = True, from_reference: bool = False,
               from_measurement: bool = False) -> None:
        """Latch a stop (once): controlled stop now, nothing forwarded until a reset."""
        if self.latched:
            return
        self.latched = reason
        self.latch_resets = resets if resets is not None else self.monitor_resets
        self.counts['estops'] += 1
        out.log.append(('error', f'emergency stop: {reason}; holding the robot and forwarding '
                                 'nothing until the safety monitor is reset'))
        if request:
            out.stop_request = stop_request(reason, self.session, self.monitor_resets)
        stop = self._stop(now, from_reference=from_reference, from_measurement=from_measurement)
        if stop is not None:
            out.trajectory = stop
