import numpy as np
import pytest

from vla_collect.episode_io import list_episodes, open_episode
from vla_control.rollouts import RolloutRecorder

JOINTS = ['a', 'b']


def _run(recorder, instruction, frames=2, t0=0.0):
    recorder.start(instruction)
    opened = None
    for i in range(frames):
        path = recorder.record(np.zeros((4, 6, 3), np.uint8), {}, np.zeros(2), np.zeros(2),
                               np.full(2, 0.1 * i, np.float32), t0 + i / 10)
        opened = opened or path
    recorder.close()
    return opened


def test_each_command_is_one_episode_with_its_instruction(tmp_path):
    recorder = RolloutRecorder(tmp_path / 'rollouts', JOINTS, fps=10.0)
    first = _run(recorder, 'pick the cube')
    second = _run(recorder, 'open the gripper', frames=3)
    assert [first.name, second.name] == ['episode_000000.hdf5', 'episode_000001.hdf5']
    assert list_episodes(tmp_path / 'rollouts') == [first, second]
    with open_episode(second) as ep:
        assert ep.language_command == 'open the gripper' and len(ep) == 3 and not ep.success
        assert ep.fps == 10.0 and ep.joint_names == JOINTS


def test_a_deleted_rollout_does_not_make_the_next_one_collide(tmp_path):
    """Numbered by the count of files (the old way), the third rollout would take the kept
    second one's number after the first was deleted."""
    recorder = RolloutRecorder(tmp_path, JOINTS, fps=10.0)
    first, second = _run(recorder, 'a'), _run(recorder, 'b')
    first.unlink()
    third = _run(recorder, 'c')
    assert third.name == 'episode_000002.hdf5' and second.exists()
    assert list_episodes(tmp_path) == [second, third]
    with open_episode(second) as ep:
        assert ep.language_command == 'b'


def test_nothing_is_written_without_directory_instruction_or_frames(tmp_path):
    assert _run(RolloutRecorder('', JOINTS, fps=10.0), 'pick') is None
    recorder = RolloutRecorder(tmp_path, JOINTS, fps=10.0)
    assert _run(recorder, '') is None
    recorder.start('pick')
    recorder.close()  # no acted frame: nothing kept
    assert list(tmp_path.iterdir()) == []


def test_a_writer_error_propagates_and_close_stops_the_recording(tmp_path):
    recorder = RolloutRecorder(tmp_path, JOINTS, fps=10.0)
    recorder.start('pick')
    with pytest.raises(ValueError):
        recorder.record(np.zeros((4, 6, 3), np.uint8), {}, np.zeros(3), None, np.zeros(2), 0.0)
    recorder.close()
    assert recorder.record(np.zeros((4, 6, 3), np.uint8), {}, np.zeros(2), None, np.zeros(2),
                           1.0) is None
    assert list_episodes(tmp_path) == []


def test_record_or_stop_reports_a_writer_error_and_stops_the_recording(tmp_path):
    recorder = RolloutRecorder(tmp_path, JOINTS, fps=10.0)
    recorder.start('pick')
    image = np.zeros((4, 6, 3), np.uint8)
    path, error = recorder.record_or_stop(image, {}, np.zeros(2), np.zeros(2), np.zeros(2), 0.0)
    assert path is not None and path.name == 'episode_000000.hdf5' and error == ''
    path, error = recorder.record_or_stop(image, {}, np.zeros(3), np.zeros(2), np.zeros(2), 0.1)
    assert path is None and error.startswith('recording stopped: ')
    assert recorder.instruction is None and recorder.close_or_report() == ''
    assert recorder.record_or_stop(image, {}, np.zeros(2), np.zeros(2), np.zeros(2), 0.2) == (None, '')
    assert len(list_episodes(tmp_path)) == 1  # the frame before the error is kept


def test_an_end_effector_policy_records_its_actions_beside_the_joint_targets(tmp_path):
    names = ['ee_dx', 'gripper']
    recorder = RolloutRecorder(tmp_path, JOINTS, fps=10.0, ee_action_names=names)
    recorder.start('reach')
    path = recorder.record(np.zeros((4, 6, 3), np.uint8), {}, np.zeros(2), np.zeros(2),
                           np.array([0.3, 0.04], np.float32), 0.0,
                           action_ee=np.array([0.01, 0.04], np.float32))
    recorder.close()
    with open_episode(path) as ep:
        np.testing.assert_allclose(ep.actions[:], [[0.3, 0.04]])
    with open_episode(path, 'ee_delta') as ep:
        assert ep.action_names == names
        np.testing.assert_allclose(ep.actions[:], [[0.01, 0.04]])
