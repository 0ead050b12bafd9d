"""Lock-step simulation for the controller, without ROS: which simulated tick is due, and the
wait for the node clock to reach it.

With ``lockstep`` there is no control timer: each simulated tick is taken once its images and
joint state (one header stamp) have arrived and the node clock (``/clock``) has reached it, and
every tick is answered, a hold by re-sending its target, so the simulator never waits out its
timeout and the policy always sees the tick it answers.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence


class LockstepTicks:
    """Lock-step: which simulated tick is due.  A tick is due once every needed input (the
    images and the joint state) has arrived with its header stamp, and each stamp once."""

    def __init__(self, needed: Sequence[str]) -> None:
        self.needed = tuple(needed)  # e.g. ('image', 'joint_state', 'image_wrist')
        self.stamps: dict[str, float] = {}  # input -> header stamp of its newest message
        self.answered = float('-inf')  # stamp of the newest tick taken
        self.due: float | None = None  # stamp of the tick to answer next (None before the first)

    def observed(self, what: str, stamp: float) -> bool:
        """Note that input ``what`` arrived stamped ``stamp`` (s); True when that makes the
        tick of ``stamp`` due."""
        self.stamps[what] = stamp
        if stamp > self.answered + 1e-6 and all(
                abs(self.stamps.get(k, -1.0) - stamp) < 1e-6 for k in self.needed):
            self.answered = self.due = stamp
            return True
        return False

    def await_due(self, now: Callable[[], float], limit: float, stopping: threading.Event,
                  poll: float = 0.0005) -> tuple[float | None, str]:
        """(the stamp of the due tick, '') once the node clock ``now()`` has reached it (the
        simulator publishes /clock after the tick's observations; commands stamped before it
        would not answer the tick); (None, '') with no tick due or when ``stopping``; (None,
        why) when the clock does not get there within ``limit`` wall seconds (the tick is
        answered by the next one)."""
        stamp = self.due
        if stamp is None:
            return None, ''
        deadline = time.monotonic() + limit
        while now() < stamp - 1e-6:
            if stopping.is_set():
                return None, ''
            if time.monotonic() > deadline:
                return None, (f'the node clock did not reach the tick stamped {stamp:.3f} s within '
                              f'{limit:g} s (is /clock published?)')
            time.sleep(poll)
        return stamp, ''
