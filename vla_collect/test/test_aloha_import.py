"""ALOHA / ACT HDF5 episodes -> episodes, on files written here with h5py in ALOHA's layout."""
import h5py
import numpy as np
import pytest

from vla_collect.aloha_import import ALOHA_JOINT_NAMES, AlohaImportError, import_aloha
from vla_collect.dataset_cli import main as dataset_main
from vla_collect.episode_io import list_episodes, open_episode, validate_episode
from vla_collect.testing import write_aloha_file


def test_aloha_files_convert_losslessly(tmp_path):
    src = tmp_path / 'aloha'
    src.mkdir()
    truth = [write_aloha_file(src / f'episode_{i}.hdf5', seed=i) for i in range(2)]
    report = import_aloha([src], tmp_path / 'out', 'transfer the cube', progress=False)
    assert not report['failed'] and len(report['episodes']) == 2
    for path, data in zip(list_episodes(tmp_path / 'out'), truth):
        assert validate_episode(path) == []
        with open_episode(path) as ep:
            assert ep.joint_names == ALOHA_JOINT_NAMES and ep.fps == 50.0 and ep.success
            assert ep.language_command == 'transfer the cube'
            np.testing.assert_array_equal(ep.file['/observations/images'][:], data['images']['top'])
            np.testing.assert_array_equal(ep.file['/observations/images_left_wrist'][:],
                                          data['images']['left_wrist'])
            np.testing.assert_allclose(ep.file['/observations/joint_positions'][:], data['qpos'], rtol=1e-6)
            np.testing.assert_allclose(ep.file['/observations/joint_velocities'][:], data['qvel'], rtol=1e-6)
            np.testing.assert_allclose(ep.file['/actions'][:], data['action'], rtol=1e-6)
            assert ep.file.attrs['success_source'] == 'assumed'


def test_bad_aloha_files_name_the_problem_and_leave_nothing(tmp_path, capsys):
    src = tmp_path / 'aloha'
    src.mkdir()
    write_aloha_file(src / 'good.hdf5')
    write_aloha_file(src / 'truncated.hdf5', steps=200)
    raw = (src / 'truncated.hdf5').read_bytes()
    (src / 'truncated.hdf5').write_bytes(raw[: len(raw) // 2])
    with h5py.File(src / 'no_action.hdf5', 'w') as f:
        f['observations/qpos'] = np.zeros((3, 14))
    out = tmp_path / 'out'
    assert dataset_main(['import', '--format', 'aloha', str(src), str(out), '--instruction', 'x',
                         '--quiet']) == 1
    err = capsys.readouterr().err
    assert 'truncated.hdf5' in err and 'no_action.hdf5: no /action' in err
    assert len(list_episodes(out)) == 1 and not list(out.glob('*.tmp'))
    with pytest.raises(AlohaImportError, match='no .hdf5'):
        import_aloha([tmp_path], out, 'x', progress=False)


def test_instruction_is_required(tmp_path, capsys):
    write_aloha_file(tmp_path / 'e.hdf5')
    assert dataset_main(['import', '--format', 'aloha', str(tmp_path / 'e.hdf5'),
                         str(tmp_path / 'out'), '--quiet']) == 1
    assert 'no instruction' in capsys.readouterr().err
