"""End-effector commands beside the joint ones (/actions_ee), and the episode_metadata parameter,
without ROS."""
import h5py
import numpy as np
import pytest

from vla_collect.episode_io import EpisodeWriter, open_episode, validate_episode
from vla_collect.episode_metadata import parse_episode_metadata
from vla_collect.episode_writer import ACTIONS_EE
from vla_collect.recorder import ACTION_EE, Recorder, RecorderError
from vla_collect.stream_pairing import ACTION, IMAGE, JOINT_STATES

EE = ['ee_dx', 'ee_dy', 'ee_dz', 'ee_rx', 'ee_ry', 'ee_rz', 'gripper']
DT = 1.0 / 30.0


def test_the_writer_stores_the_ee_command_beside_the_joint_targets(tmp_path):
    path = tmp_path / 'episode_000000.hdf5'
    with EpisodeWriter(path, joint_names=['j1', 'j2'], action_names=['j1', 'j2'],
                       image_shape=(8, 8, 3), ee_action_names=EE) as writer:
        for t in range(3):
            writer.append(np.zeros((8, 8, 3), np.uint8), [t, 0], [0, 0], [t, 1], timestamp=t * DT,
                          action_ee=np.full(7, 0.001 * t))
        with pytest.raises(ValueError, match='action_ee must be given exactly when'):
            writer.append(np.zeros((8, 8, 3), np.uint8), [0, 0], [0, 0], [0, 0], timestamp=1.0)
        writer.close(success=True)
    assert validate_episode(path) == []
    with h5py.File(path) as f:
        assert f[ACTIONS_EE].shape == (3, 7) and f[ACTIONS_EE].dtype == np.float32
        np.testing.assert_allclose(f[ACTIONS_EE][:, 0], [0.0, 0.001, 0.002], rtol=1e-6)
        assert [str(n) for n in f.attrs['action_ee_names']] == EE
        assert f.attrs['action_space'] == 'ee_delta'
    plain = tmp_path / 'episode_000001.hdf5'  # without: the layout and attributes as before
    with EpisodeWriter(plain, joint_names=['j1'], action_names=['j1'], image_shape=(8, 8, 3)) as writer:
        with pytest.raises(ValueError, match='action_ee must be given exactly when'):
            writer.append(np.zeros((8, 8, 3), np.uint8), [0], [0], [0], timestamp=0.0, action_ee=[0] * 7)
        writer.append(np.zeros((8, 8, 3), np.uint8), [0], [0], [0], timestamp=0.0)
        writer.close(success=True)
    with h5py.File(plain) as f:
        assert ACTIONS_EE not in f and 'action_space' not in f.attrs and 'action_ee_names' not in f.attrs


@pytest.mark.parametrize('background', [False, True])
def test_the_recorder_needs_the_ee_command_of_every_step_it_records(tmp_path, background):
    rec = Recorder(tmp_path, ['j1', 'j2'], fps=30.0, ee_action_names=EE, background=background)
    assert ACTION_EE in rec.streams
    rec.start('reach', 0.0)
    image, q = np.zeros((8, 8, 3), np.uint8), (np.zeros(2, np.float32), np.zeros(2, np.float32))
    for t in range(3):
        assert rec.record({IMAGE: image, JOINT_STATES: q, ACTION: np.full(2, t, np.float32),
                           ACTION_EE: np.full(7, t, np.float32)}, t * DT)
    assert not rec.record({IMAGE: image, JOINT_STATES: q, ACTION: np.zeros(2, np.float32)}, 3 * DT)
    # wall-clock sampling: the EE command is one more stream with its staleness limit
    for name, value in ((IMAGE, image), (JOINT_STATES, q), (ACTION, np.zeros(2, np.float32))):
        rec.update(name, value, 1.0)
    assert not rec.sample(1.0)
    rec.update(ACTION_EE, np.full(7, 9, np.float32), 1.0)
    assert rec.sample(1.0)
    summary = rec.stop(success=True)
    assert (summary.steps, summary.dropped) == (4, 2)
    assert rec.drop_reasons == {'missing action_ee': 1, 'stale action_ee': 1}
    with open_episode(summary.path) as ep:
        np.testing.assert_allclose(ep.file[ACTIONS_EE][:, 0], [0, 1, 2, 9])
        np.testing.assert_allclose(ep.actions[:, 0], [0, 1, 2, 0])


def test_episode_metadata_is_a_flat_json_object_that_leaves_the_recorders_attributes_alone():
    assert parse_episode_metadata('') == {}
    assert parse_episode_metadata('{"task": "reach_marker", "seed": 3}') == {'task': 'reach_marker', 'seed': 3}
    for text, match in (('[1]', 'JSON object of strings'), ('{"a": {"b": 1}}', 'JSON object of strings'),
                        ('{oops', 'must be a JSON object'), ('{"action_space": "joint"}', 'may not set'),
                        ('{"success": true}', 'may not set')):
        with pytest.raises(ValueError, match=match):
            parse_episode_metadata(text)
    with pytest.raises(RecorderError):
        Recorder('/nonexistent', ['j1'], ee_action_names=EE).stop(True)
