"""Lock-step pairing of observations with the command that answered them (no ROS)."""
import numpy as np
import pytest

from vla_collect.recorder import Recorder, RecorderError
from vla_collect.stream_pairing import ACTION, IMAGE, JOINT_STATES, TickPairing

DT = 1.0 / 30.0
OBS = [IMAGE, JOINT_STATES]


def tick(pairing, t, value=None):
    """The observations of tick t (stamp t * DT); returns what that finished."""
    finished = pairing.observe(JOINT_STATES, ('q', t), t * DT)
    assert pairing.observe(IMAGE, ('img', t), t * DT) is None
    return finished


def test_each_tick_gets_the_last_command_stamped_for_it_before_the_next_tick():
    pairing = TickPairing(OBS, period=DT)
    assert tick(pairing, 0) is None
    assert pairing.answered() is None  # observations, but no answer yet
    pairing.act('a0', 0 * DT)
    assert pairing.answered() == pytest.approx(0.0)  # acknowledged once ...
    assert pairing.answered() is None  # ... not twice
    pairing.act('a0-bis', 0 * DT)  # a second answer before tick 1 (the newest is stepped with)
    step = tick(pairing, 1)
    assert step.stamp == pytest.approx(0.0)
    assert step.values[ACTION] == 'a0-bis' and step.values[IMAGE] == ('img', 0)
    pairing.act('a1', 1 * DT)
    assert tick(pairing, 2).values[ACTION] == 'a1'


def test_a_gate_whose_clock_lagged_one_tick_still_answers_but_older_commands_do_not():
    pairing = TickPairing(OBS, period=DT)
    tick(pairing, 5)
    pairing.act('stale', 3 * DT)  # answered tick 3: never paired with tick 5
    assert pairing.answered() is None
    pairing.act('lagged', 4 * DT)  # the gate forwarded the answer to tick 5 before its /clock said 5
    assert pairing.answered() == pytest.approx(5 * DT)
    assert tick(pairing, 6).values[ACTION] == 'lagged'


def test_a_command_that_overtakes_its_observations_waits_for_them():
    pairing = TickPairing(OBS, period=DT)
    tick(pairing, 0)
    pairing.act('a0', 0)  # unstamped: answers the current tick
    pairing.act('a1', 1 * DT)  # arrives before any observation of tick 1
    step0 = tick(pairing, 1)
    assert step0.values[ACTION] == 'a0'  # not overwritten by tick 1's answer
    assert pairing.answered() == pytest.approx(DT)
    assert tick(pairing, 2).values[ACTION] == 'a1'


def test_unanswered_tick_and_late_observations():
    pairing = TickPairing(OBS, period=DT)
    tick(pairing, 0)
    step = tick(pairing, 1)
    assert step.values[ACTION] is None  # nothing answered tick 0
    assert pairing.observe(IMAGE, 'old', 0.0) is None and pairing.late == 1


def test_recorder_writes_paired_ticks_and_counts_missing_ones(tmp_path):
    rec = Recorder(tmp_path, ['j1', 'j2'], fps=30.0)
    rec.start('wave', 0.0)
    image = np.zeros((8, 8, 3), np.uint8)
    q = (np.zeros(2, np.float32), np.zeros(2, np.float32))
    for t in range(3):
        assert rec.record({IMAGE: image, JOINT_STATES: q, ACTION: np.full(2, t, np.float32)},
                          t * DT)
    assert not rec.record({IMAGE: image, JOINT_STATES: q, ACTION: None}, 3 * DT)
    summary = rec.stop(success=True)
    assert (summary.steps, summary.dropped) == (3, 1)
    assert rec.drop_reasons == {'missing action': 1}
    from vla_collect.episode_io import open_episode
    with open_episode(summary.path) as ep:
        np.testing.assert_allclose(ep.timestamps, [0.0, DT, 2 * DT])
        np.testing.assert_allclose(ep.actions[:, 0], [0, 1, 2])


def test_background_writes_keep_every_step_in_order_and_count_refused_ones(tmp_path):
    """Recorder(background=True): writes run in a worker thread; stop() waits for them, so the
    saved episode holds every step counted, in order, and a step the writer refuses (a
    non-finite value) is a counted drop."""
    rec = Recorder(tmp_path, ['j1', 'j2'], fps=30.0, background=True, max_pending=4)
    rec.start('wave', 0.0)
    q = (np.zeros(2, np.float32), np.zeros(2, np.float32))
    for t in range(40):  # more than max_pending: record() waits for the writer, never drops
        image = np.full((8, 8, 3), t, np.uint8)
        action = np.full(2, np.nan if t == 7 else t, np.float32)
        assert rec.record({IMAGE: image, JOINT_STATES: q, ACTION: action}, t * DT)
    assert not rec.record({IMAGE: np.zeros((4, 4, 3), np.uint8), JOINT_STATES: q,
                           ACTION: np.zeros(2, np.float32)}, 40 * DT)  # size changed: at once
    summary = rec.stop(success=True)
    assert (summary.steps, summary.dropped) == (39, 2)
    assert rec.drop_reasons == {'invalid step': 1, 'image size changed': 1}
    from vla_collect.episode_io import open_episode
    with open_episode(summary.path) as ep:
        kept = [t for t in range(40) if t != 7]
        np.testing.assert_allclose(ep.timestamps, np.array(kept) * DT)
        np.testing.assert_allclose(ep.actions[:, 0], kept)
        assert [int(ep.images[i][0, 0, 0]) for i in range(len(kept))] == kept


def test_background_write_failure_aborts_the_episode_without_a_final_file(tmp_path):
    rec = Recorder(tmp_path, ['j1', 'j2'], fps=30.0, background=True)
    rec.start('wave', 0.0)
    path = rec.current.path
    path.with_name(path.name + '.tmp').mkdir()  # the writer cannot create its temporary file
    q = (np.zeros(2, np.float32), np.zeros(2, np.float32))
    step = {IMAGE: np.zeros((8, 8, 3), np.uint8), JOINT_STATES: q, ACTION: np.zeros(2, np.float32)}
    assert rec.record(step, 0.0)  # queued; the failure shows at the next call
    with pytest.raises(RecorderError, match='aborted'):
        rec.stop(success=True)
    assert not rec.recording and rec.last_error and not path.exists()
