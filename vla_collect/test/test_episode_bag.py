"""EpisodeBag: an episode's raw messages as a rosbag2 directory, complete or absent."""
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from vla_collect.episode_bag import EpisodeBag, EpisodeBagError, bag_path_for

TS = get_typestore(Stores.LATEST)
T = TS.types


def joint_state(t, q):
    stamp = T['builtin_interfaces/msg/Time'](sec=int(t), nanosec=int(round((t % 1) * 1e9)))
    msg = T['sensor_msgs/msg/JointState'](
        header=T['std_msgs/msg/Header'](stamp=stamp, frame_id=''), name=['a', 'b'],
        position=np.array(q, dtype=np.float64), velocity=np.zeros(2), effort=np.zeros(0))
    return TS.serialize_cdr(msg, 'sensor_msgs/msg/JointState')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_saved_episode_keeps_every_message_under_its_final_name(tmp_path, storage):
    episode = tmp_path / 'episode_000007.hdf5'
    bag = EpisodeBag(episode, storage)
    assert bag.path == bag_path_for(episode) == tmp_path / 'episode_000007.bag'
    for i in range(5):
        bag.write('/joint_states', 'sensor_msgs/msg/JointState', i * 33_333_333,
                  joint_state(i / 30, [0.1 * i, -0.1 * i]))
    bag.write('/voice_command', 'std_msgs/msg/String', 10,
              TS.serialize_cdr(T['std_msgs/msg/String'](data='pick it'), 'std_msgs/msg/String'))
    assert not bag.path.exists()  # under its temporary name until the episode is saved
    assert bag.close('pick up the red cube', True) == bag.path
    assert sorted(p.name for p in tmp_path.iterdir()) == ['episode_000007.bag']
    with Reader(bag.path) as reader:
        rows = [(c.topic, t, TS.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages()]
    states = [(t, m.position.tolist()) for topic, t, m in rows if topic == '/joint_states']
    assert [t for t, _ in states] == [i * 33_333_333 for i in range(5)]
    assert states[3][1] == pytest.approx([0.3, -0.3])
    meta = yaml.safe_load((bag.path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['custom_data'] == {'vla.language_command': 'pick up the red cube',
                                   'vla.success': 'true'}


def test_a_discarded_or_empty_episode_leaves_no_bag_and_nothing_is_overwritten(tmp_path):
    episode = tmp_path / 'episode_000001.hdf5'
    bag = EpisodeBag(episode)
    bag.write('/joint_states', 'sensor_msgs/msg/JointState', 0, joint_state(0.0, [0, 0]))
    bag.abort()
    assert list(tmp_path.iterdir()) == []
    assert EpisodeBag(episode).close('x', False) is None  # nothing written: nothing saved
    assert list(tmp_path.iterdir()) == []
    done = EpisodeBag(episode)
    done.write('/joint_states', 'sensor_msgs/msg/JointState', 0, joint_state(0.0, [0, 0]))
    done.close('x', True)
    again = EpisodeBag(episode)
    with pytest.raises(EpisodeBagError, match='exists already'):
        again.write('/joint_states', 'sensor_msgs/msg/JointState', 0, joint_state(0.0, [0, 0]))
    bad = EpisodeBag(tmp_path / 'episode_000002.hdf5')
    with pytest.raises(EpisodeBagError, match='no_such_pkg/msg/Nothing'):
        bad.write('/x', 'no_such_pkg/msg/Nothing', 0, b'\x00\x01\x00\x00')
    bad.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['episode_000001.bag']
    with pytest.raises(ValueError, match='storage'):
        EpisodeBag(episode, 'rosbag1')


def _copy_through_episode_bag(source, episode, storage, compression):
    """Every message of the bag ``source`` written again through the recorder's EpisodeBag."""
    bag = EpisodeBag(episode, storage, compression)
    with Reader(source) as reader:
        for connection, t, raw in reader.messages():
            bag.write(connection.topic, connection.msgtype, t, raw)
    return bag.close('pick up the red cube', True)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_compressed_bag_reads_back_through_the_import_as_the_uncompressed_one(tmp_path, storage):
    """bag_compression: zstd (MCAP: its chunks, sqlite3: each message) writes a smaller bag that
    `vla dataset import --format rosbag` turns into the same episode as an uncompressed one."""
    from vla_collect.dataset_cli import main as dataset_main
    from vla_collect.episode_io import list_episodes, open_episode
    from vla_collect.testing import BAG_MAPPING, simulated_episode, write_bag
    source = write_bag(tmp_path / 'source', simulated_episode(steps=20))
    mapping = tmp_path / 'mapping.yaml'
    mapping.write_text(yaml.safe_dump(BAG_MAPPING))
    episodes = {}
    for compression in ('none', 'zstd'):
        bag = _copy_through_episode_bag(source, tmp_path / compression / 'episode_000000.hdf5',
                                        storage, compression)
        meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
        assert meta['storage_identifier'] == storage
        (storage_file,) = [p for p in bag.iterdir() if p.name != 'metadata.yaml']
        episodes[compression] = {'size': storage_file.stat().st_size, 'meta': meta}
        src = storage_file if storage == 'mcap' else bag  # a single .mcap file reads on its own
        out = tmp_path / f'{compression}_out'
        assert dataset_main(['import', '--format', 'rosbag', str(src), str(out), '--mapping', str(mapping)]) == 0
        (path,) = list_episodes(out)
        with open_episode(path) as ep:
            episodes[compression]['arrays'] = {key: ep.file[key][()] for key in (
                '/observations/images', '/observations/images_wrist', '/observations/joint_positions',
                '/actions', '/timestamps')}
            assert len(ep) >= 18 and ep.language_command == 'pick up the red cube'
    plain, packed = episodes['none'], episodes['zstd']
    assert packed['size'] < plain['size']
    # MCAP compresses inside the file (rosbag2 sees no compression); sqlite3 says it in metadata
    assert packed['meta']['compression_mode'] == ('' if storage == 'mcap' else 'message')
    for key, value in plain['arrays'].items():
        np.testing.assert_array_equal(packed['arrays'][key], value, err_msg=key)


def test_an_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"bag compression must be one of \('none', 'zstd'\), got 'lz4'"):
        EpisodeBag(tmp_path / 'episode_000000.hdf5', 'mcap', 'lz4')
