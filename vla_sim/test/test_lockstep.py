"""The simulator's lock-step bookkeeping (vla_sim.lockstep), without ROS."""
import pytest

from vla_sim.lockstep import LockstepWaits, TickWait

COMMAND = '/joint_trajectory_controller/joint_trajectory'
ACK = '/teleop_collector/tick'


def test_a_tick_is_answered_by_stamps_not_older_than_it():
    wait = TickWait(2.0, [COMMAND, ACK], started=0.0)
    wait.answer(COMMAND, 1.9)  # answers an older tick
    assert wait.missing == {COMMAND, ACK}
    wait.answer(COMMAND, 2.0)
    wait.answer(ACK, 0.0)  # a source that does not stamp
    assert wait.missing == set()


def test_the_command_times_out_first_then_the_acknowledgements_get_their_own_limit():
    waits = LockstepWaits(COMMAND, [ACK], command_timeout=0.25, ack_timeout=2.0)
    assert not waits.answered() and not waits.timed_out(100.0)  # no tick yet
    waits.begin(1.0, now=10.0)
    assert not waits.timed_out(10.2)
    assert waits.timed_out(10.3)
    assert (waits.timeouts, waits.silent, waits.silent_ticks) == (1, sorted([COMMAND, ACK]), 1)
    waits.begin(1.1, now=11.0)
    waits.answer(COMMAND, 1.1)
    assert not waits.timed_out(12.9)  # the command is in: the recorder may take 2 s
    assert waits.timed_out(13.0)
    assert waits.silent_counts == {ACK: 2, COMMAND: 1} and waits.silent_ticks == 2
    waits.begin(1.2, now=20.0)
    waits.answer(COMMAND, 1.2)
    waits.answer(ACK, 1.2)
    assert waits.answered() and not waits.timed_out(99.0)
    waits.new_episode()
    assert (waits.silent, waits.silent_ticks, waits.timeouts) == ([], 0, 2)


def test_unpausing_restarts_the_timeout_and_a_bad_timeout_is_refused():
    waits = LockstepWaits(COMMAND, [], command_timeout=0.5, ack_timeout=0.1)
    assert waits.ack_timeout == 0.5  # never shorter than the command's
    waits.begin(0.0, now=0.0)
    waits.restart_timer(5.0)
    assert not waits.timed_out(5.4) and waits.timed_out(5.5)
    with pytest.raises(ValueError, match='lockstep_timeout must be > 0 s'):
        LockstepWaits(COMMAND, [], command_timeout=0.0, ack_timeout=1.0)
