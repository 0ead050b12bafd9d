"""rosbag2 / MCAP -> episodes, on bags written in the test by rosbags from a simulated episode."""
import json

import numpy as np
import pytest

pytest.importorskip('rosbags', reason='rosbags is in requirements.txt')

from rosbags.rosbag2 import StoragePlugin  # noqa: E402

from vla_collect.bag_import import TICK_TOLERANCE, BagImportError, BagMapping, import_bags  # noqa: E402
from vla_collect.dataset_cli import main as dataset_main  # noqa: E402
from vla_collect.episode_io import list_episodes, open_episode, validate_episode  # noqa: E402
from vla_collect.testing import BAG_FPS, BAG_MAPPING, simulated_episode, write_bag  # noqa: E402
from vla_sim import JOINT_NAMES  # noqa: E402


@pytest.fixture(scope='module')
def ticks():
    return simulated_episode()


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_bag_round_trip_gives_the_recorded_steps(ticks, tmp_path, storage):
    bag = write_bag(tmp_path / 'bag', ticks, storage)
    report = import_bags([bag], tmp_path / 'out', BagMapping.from_dict(BAG_MAPPING), progress=False)
    (path,) = list_episodes(tmp_path / 'out')
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert ep.language_command == 'pick up the red cube' and ep.success and ep.fps == BAG_FPS
        assert ep.joint_names == list(JOINT_NAMES)
        stamps = ep.file['/timestamps'][:]
        # each step holds the latest frame/state and the latest command at its tick, as the
        # live recorder pairs them: the tick's frame with the command that answered it
        frame_times = np.array([int(round((100.0 + k / BAG_FPS) * 1e9)) * 1e-9 for k in range(len(ticks))])
        command_times = np.array([int(round((100.0 + k / BAG_FPS + 0.005) * 1e9)) * 1e-9
                                  for k in range(len(ticks))])
        for i, t in enumerate(stamps):
            frame = ticks[int(np.searchsorted(frame_times, t + TICK_TOLERANCE, side='right')) - 1]
            command = ticks[int(np.searchsorted(command_times, t + TICK_TOLERANCE, side='right')) - 1]
            assert command is frame  # the command of the frame's own tick, not the one before
            np.testing.assert_array_equal(ep.file['/observations/images'][i], frame['image'])
            np.testing.assert_array_equal(ep.file['/observations/images_wrist'][i], frame['image_wrist'])
            np.testing.assert_allclose(ep.file['/observations/joint_positions'][i], frame['q'], atol=1e-6)
            np.testing.assert_allclose(ep.file['/actions'][i], command['action'], atol=1e-6)
        assert len(ep) >= len(ticks) - 2
    summary = report.as_dict()
    assert summary['dropped_steps'] == 0 and summary['episodes'][0]['ended_by'] == 'end of bag'


def test_single_mcap_file_compressed_images_and_the_cli(ticks, tmp_path, capsys):
    bag = write_bag(tmp_path / 'bag', ticks[:15], compressed=True)
    (mcap,) = bag.glob('*.mcap')
    mapping = tmp_path / 'mapping.yaml'
    import yaml
    mapping.write_text(yaml.safe_dump({**BAG_MAPPING, 'instruction': None}))
    out = tmp_path / 'out'
    assert dataset_main(['import', '--format', 'rosbag', str(mcap), str(out), '--mapping',
                         str(mapping), '--instruction', 'grab it']) == 0
    (path,) = list_episodes(out)
    with open_episode(path) as ep:
        assert ep.language_command == 'grab it'
        np.testing.assert_array_equal(ep.file['/observations/images'][-1], ticks[14]['image'])  # png: lossless
    report = json.loads((out / 'import_report.json').read_text())
    assert report['messages']['/camera/image_raw'] == 15 and report['dropped_steps'] == 0
    assert 'episode' in capsys.readouterr().out


def test_a_gap_splits_episodes_and_stale_steps_are_counted(ticks, tmp_path):
    bag = write_bag(tmp_path / 'bag', ticks, skip_ticks=set(range(18, 24)))  # 0.2 s silence
    report = import_bags([bag], tmp_path / 'out',
                         BagMapping.from_dict({**BAG_MAPPING, 'split': 'gap', 'gap': 0.1}), progress=False)
    assert len(list_episodes(tmp_path / 'out')) == 2
    assert [e['ended_by'].split()[0] for e in report.episodes] == ['gap', 'end']
    stale = import_bags([write_bag(tmp_path / 'b2', ticks, skip_ticks={10, 11, 12, 13, 14, 15, 16, 17})],
                        tmp_path / 'out2', BagMapping.from_dict(BAG_MAPPING), progress=False)
    assert stale.as_dict()['dropped_steps'] > 0
    assert any(k.startswith('stale') for k in stale.episodes[0]['drop_reasons'])


def test_bad_bags_and_mappings_are_clear_errors(ticks, tmp_path):
    mapping = BagMapping.from_dict(BAG_MAPPING)
    bag = write_bag(tmp_path / 'bag', ticks[:5], drop_topic='/camera/wrist/image_raw')
    with pytest.raises(BagImportError, match='/camera/wrist/image_raw is not in the bag'):
        import_bags([bag], tmp_path / 'out', mapping, progress=False)
    with pytest.raises(BagImportError, match='is sensor_msgs/msg/Image, expected'):
        import_bags([write_bag(tmp_path / 'b2', ticks[:5])], tmp_path / 'out',
                    BagMapping.from_dict({**BAG_MAPPING, 'cameras': {}, 'action': '/camera/wrist/image_raw'}),
                    progress=False)
    with pytest.raises(BagImportError, match='more than one stream'):
        BagMapping.from_dict({**BAG_MAPPING, 'image': '/voice_command'})
    with pytest.raises(BagImportError, match='no such bag'):
        import_bags([tmp_path / 'nothing'], tmp_path / 'out', mapping, progress=False)
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'not a bag at all')
    with pytest.raises(BagImportError, match='not a readable rosbag2 bag'):
        import_bags([junk], tmp_path / 'out', mapping, progress=False)
    with pytest.raises(BagImportError, match='unknown key'):
        BagMapping.from_dict({**BAG_MAPPING, 'camera': 'x'})
    with pytest.raises(BagImportError, match='missing topic'):
        BagMapping.from_dict({'image': '/a'})
    assert list_episodes(tmp_path / 'out') == [] and not list((tmp_path / 'out').glob('*.tmp'))
