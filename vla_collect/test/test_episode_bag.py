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
