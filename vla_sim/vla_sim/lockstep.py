"""The simulator node's lock-step bookkeeping, without ROS.

In lock-step the simulator publishes tick t (stamped T_t) and steps to t+1 once every awaited topic
has answered it -- the robot command and each acknowledging topic (a recorder's ``~/tick``) with a
stamp >= T_t -- or once the tick has waited too long: ``command_timeout`` wall seconds while the
command is missing, ``ack_timeout`` for the acknowledgements once the command is in.  A tick
stepped on a timeout is counted, and so is every topic that left it unanswered.
"""
from __future__ import annotations

#: stamps are compared with this tolerance (s): the clock is published in whole nanoseconds
STAMP_TOLERANCE = 1e-6


class TickWait:
    """What lock-step still waits for before the step after the tick stamped ``stamp``."""

    def __init__(self, stamp: float, topics: list[str], started: float) -> None:
        self.stamp = stamp  # clock time (s) of the published tick
        self.missing = set(topics)  # topics that have not answered this tick yet
        self.started = started  # monotonic time the tick was published (or the sim unpaused)

    def answer(self, topic: str, stamp: float) -> None:
        """``topic`` sent a message stamped ``stamp``: it answers this tick if it is not older
        (stamp 0: a source that does not stamp, counted as an answer)."""
        if stamp == 0.0 or stamp >= self.stamp - STAMP_TOLERANCE:
            self.missing.discard(topic)


class LockstepWaits:
    """The tick being answered and the record of the ticks that timed out.

    ``timeouts``: ticks stepped on a timeout; ``silent_counts``: per topic, the ticks it left
    unanswered; ``silent``: the topics that missed the last timed-out tick; ``silent_ticks``:
    consecutive ticks that timed out (reset by a tick stepped on its answers or a new episode).
    """

    def __init__(self, command_topic: str, ack_topics: list[str], command_timeout: float,
                 ack_timeout: float) -> None:
        if not command_timeout > 0:
            raise ValueError(f'lockstep_timeout must be > 0 s, got {command_timeout}')
        self.command_topic = command_topic
        self.topics = [command_topic] + list(ack_topics)
        self.command_timeout = float(command_timeout)
        self.ack_timeout = max(self.command_timeout, float(ack_timeout))
        self.wait: TickWait | None = None
        self.timeouts = 0
        self.silent_counts: dict[str, int] = {}
        self.silent: list[str] = []
        self.silent_ticks = 0

    def begin(self, stamp: float, now: float) -> None:
        """Tick ``stamp`` was published at monotonic time ``now``: its answers are awaited."""
        self.wait = TickWait(stamp, self.topics, now)

    def answer(self, topic: str, stamp: float) -> None:
        if self.wait is not None:
            self.wait.answer(topic, stamp)

    def answered(self) -> bool:
        """Whether the current tick has every answer."""
        return self.wait is not None and not self.wait.missing

    def restart_timer(self, now: float) -> None:
        """The tick's timeout counts from ``now`` (the simulator was unpaused)."""
        if self.wait is not None:
            self.wait.started = now

    def new_episode(self) -> None:
        """A new episode starts with a clean record of silent topics."""
        self.silent, self.silent_ticks = [], 0

    def timed_out(self, now: float) -> bool:
        """Whether the current (unanswered) tick has waited past its limit at ``now``; if so, the
        timeout and the silent topics are counted."""
        wait = self.wait
        if wait is None or not wait.missing:
            return False
        limit = self.command_timeout if self.command_topic in wait.missing else self.ack_timeout
        if now - wait.started < limit:
            return False
        self.timeouts += 1
        self.silent_ticks += 1
        self.silent = sorted(wait.missing)
        for topic in self.silent:
            self.silent_counts[topic] = self.silent_counts.get(topic, 0) + 1
        return True
