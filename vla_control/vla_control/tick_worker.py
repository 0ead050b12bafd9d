"""The controller's tick thread, without ROS.

The control timer (or, in lock-step, the arrival of a tick's observations) only signals the
thread, which runs one tick at a time: subscriptions never wait for the model, and rclpy's
multi-threaded executor (which busy-spins while a callback group is occupied) is not needed.
A timer signal that finds the previous tick still running is refused (an overrun: the caller
counts it), never queued.
"""
from __future__ import annotations

import threading
from collections.abc import Callable


class TickWorker:
    """Runs ``tick()`` in its own thread each time it is signalled.

    ``setup()`` is called in the thread before each tick until it returns True (e.g. torch's
    intra-op thread count, once a policy is loaded: it applies to the calling thread); an
    exception from ``tick`` goes to ``on_error`` and the loop goes on.
    """

    def __init__(self, tick: Callable[[], None], on_error: Callable[[Exception], None],
                 setup: Callable[[], bool] | None = None, name: str = 'tick_worker') -> None:
        self.tick, self.on_error, self.setup = tick, on_error, setup
        self.busy = False  # a tick was requested and has not finished
        self.stopping = threading.Event()
        self._due = threading.Event()
        self._ready = setup is None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def request(self) -> bool:
        """A timer tick: signal the thread, or False (an overrun) while a tick still runs."""
        if self.busy:
            return False
        self.busy = True
        self._due.set()
        return True

    def wake(self) -> None:
        """Signal a tick whatever the thread is doing (lock-step: the tick's inputs are in; a
        signal during a tick runs one more after it)."""
        self._due.set()

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        self.thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            if not self._due.wait(timeout=0.1):
                continue
            if not self._ready:
                self._ready = bool(self.setup())
            self._due.clear()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the loop survives any one tick
                self.on_error(exc)
            finally:
                self.busy = False
