"""The recorded streams and how their values become one step, without ROS.

Two pairing rules, one per clock: against the wall clock the recorder takes the latest value of
every stream no older than that stream's staleness limit (:class:`Stream`); beside a lock-step
simulator it pairs by header stamps (:class:`TickPairing`): step t is the frame and joint state
stamped T_t and the command that answered them.  The recorder (:mod:`vla_collect.recorder`)
samples with the first (so does the rosbag importer, :mod:`vla_collect.bag_import`, through it);
the collector node feeds the second.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

IMAGE = 'image'
JOINT_STATES = 'joint_states'
ACTION = 'action'


@dataclass
class Stream:
    """The latest value of one input stream and when it arrived (recorder clock, seconds)."""

    name: str
    max_age: float  # seconds after which the value is stale
    value: Any = None
    stamp: float | None = None
    received: int = 0
    stale_drops: int = 0  # recorded steps dropped because this stream was stale

    def fresh(self, now: float) -> bool:
        return self.stamp is not None and 0.0 <= now - self.stamp <= self.max_age

    def age(self, now: float) -> float | None:
        return None if self.stamp is None else now - self.stamp


@dataclass
class TickStep:
    """One tick of a lock-step simulator: its observations and the action that answered them."""

    stamp: float  # clock time (s) of the tick's observations
    values: dict[str, Any]  # stream name -> value; ACTION is None when nothing answered


class TickPairing:
    """Pairs each tick's observations with the command that answered them (lock-step simulation).

    A tick is the set of observation messages stamped with the same clock time T_t (the
    simulator publishes joint state t, frame t, then ``/clock`` = T_t).  Its action is the last
    robot command that arrived after the first observation of tick t and before the first
    observation of tick t+1, stamped no earlier than T_{t-1}: the command the lock-step simulator
    stepped with (it steps when a command stamped >= T_t has arrived, with the newest one), which
    is the command the controller or scripted expert sent after seeing frame t.  One tick of
    slack in the stamp because the gate stamps what it forwards with its own clock, and its copy
    of ``/clock`` = T_t can arrive after the command that answers tick t (measured: 5 of 287
    ticks); a command stamped earlier answered an older tick and is never paired, and one stamped
    later than the newest observation (it overtook the observations it answers) waits for them.
    A tick without
    such a command is recorded as missing its action (a counted drop).  A tick is finished when
    an observation of a later tick arrives, so the tick in progress when a recording stops is
    not recorded.
    """

    def __init__(self, observations: Iterable[str], period: float, tolerance: float = 1e-6) -> None:
        self.observations = list(observations)
        self.period = float(period)  # one tick (s)
        self.tolerance = tolerance
        self.stamp: float | None = None  # the tick being gathered
        self.values: dict[str, Any] = {}
        self.action: Any = None
        self.late = 0  # observations of a tick already finished (ignored)
        self.early: list[tuple[float, Any]] = []  # commands stamped after the current tick
        self._acked: float | None = None

    def observe(self, stream: str, value: Any, stamp: float) -> TickStep | None:
        """An observation stamped ``stamp``; returns the tick it finished, if any."""
        finished = None
        if self.stamp is not None and stamp < self.stamp - self.tolerance:
            self.late += 1
            return None
        if self.stamp is None or stamp > self.stamp + self.tolerance:
            finished = self._finish()
            self.stamp, self.values, self.action = stamp, {}, None
            # a command can overtake the observations it answers (a large image is still on its
            # way): it was kept aside and belongs to this tick if stamped for it
            for early_stamp, early_value in self.early:
                if early_stamp <= stamp + self.tolerance:
                    self.act(early_value, early_stamp)
            self.early = [(t, v) for t, v in self.early if t > stamp + self.tolerance]
        self.values[stream] = value
        return finished

    def act(self, value: Any, stamp: float) -> None:
        """A robot command stamped ``stamp`` (0: unstamped, taken as answering the current tick)."""
        if self.stamp is not None and stamp > self.stamp + self.tolerance:
            self.early = self.early[-3:] + [(stamp, value)]  # answers a tick not yet observed
        elif self.stamp is not None and (
                stamp == 0.0 or stamp >= self.stamp - self.period - self.tolerance):
            self.action = value

    def answered(self) -> float | None:
        """The current tick's stamp the first time it has every observation and an action
        (what a lock-step simulator waits for before stepping), else None."""
        if (self.stamp is None or self.action is None or self._acked == self.stamp
                or any(name not in self.values for name in self.observations)):
            return None
        self._acked = self.stamp
        return self.stamp

    def _finish(self) -> TickStep | None:
        if self.stamp is None:
            return None
        return TickStep(self.stamp, {**self.values, ACTION: self.action})


def as_image(value: Any) -> np.ndarray:
    """Check an image value for :meth:`Recorder.update` (an (H, W, 3) uint8 array)."""
    arr = np.asarray(value)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) uint8 image, got {arr.dtype} {arr.shape}')
    return arr
