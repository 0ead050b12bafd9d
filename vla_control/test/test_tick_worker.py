"""The controller's tick thread (ROS-free)."""
import threading

from vla_common.testing import wait_for
from vla_control.tick_worker import TickWorker


def test_a_tick_runs_per_signal_and_a_signal_during_a_tick_is_an_overrun():
    release, ran, errors = threading.Event(), [], []
    ready = iter([False, True])

    def tick():
        ran.append(1)
        if len(ran) == 2:
            raise RuntimeError('boom')
        release.wait(5)

    worker = TickWorker(tick, errors.append, setup=lambda: next(ready))
    try:
        assert worker.request()
        assert wait_for(lambda: len(ran) == 1, 5)
        assert not worker.request()  # still running: refused, not queued
        release.set()
        assert wait_for(lambda: not worker.busy, 5)
        assert worker.request() and wait_for(lambda: len(errors) == 1, 5)
        assert str(errors[0]) == 'boom' and wait_for(lambda: not worker.busy, 5)
        worker.wake()  # lock-step: always signalled
        assert wait_for(lambda: len(ran) == 3, 5)
    finally:
        release.set()
        worker.stop()
    assert not worker.thread.is_alive()
