"""BagRecording: the collector's bag of each episode, kept, dropped on an error, or deleted."""
from types import SimpleNamespace

import pytest
from rosbags.typesys import Stores, get_typestore

from vla_collect.bag_recording import BagRecording

TS = get_typestore(Stores.LATEST)
STRING = TS.serialize_cdr(TS.types['std_msgs/msg/String'](data='pick it'), 'std_msgs/msg/String')


def summary(saved=True):
    return SimpleNamespace(saved=saved, language_command='pick it', success=True)


def test_a_saved_episode_keeps_its_bag_and_a_discarded_one_deletes_it(tmp_path):
    bags = BagRecording('mcap')
    assert bags.write('/voice_command', 'std_msgs/msg/String', 1, STRING) is None  # no episode
    bags.start(tmp_path / 'episode_000001.hdf5')
    assert bags.write('/voice_command', 'std_msgs/msg/String', 1, STRING) is None
    assert bags.status() == {'recording': True, 'last': '', 'messages': 1, 'error': ''}
    assert bags.close(summary()) is None
    assert bags.status()['last'] == str(tmp_path / 'episode_000001.bag')
    assert (tmp_path / 'episode_000001.bag').is_dir()
    bags.start(tmp_path / 'episode_000002.hdf5')
    bags.write('/voice_command', 'std_msgs/msg/String', 1, STRING)
    bags.close(summary(saved=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['episode_000001.bag']
    assert not bags.status()['recording']


def test_a_write_error_drops_this_episodes_bag_only(tmp_path):
    bags = BagRecording()
    bags.start(tmp_path / 'episode_000001.hdf5')
    error = bags.write('/x', 'no_such_pkg/msg/Nothing', 1, b'')
    assert 'no_such_pkg/msg/Nothing' in error and 'the HDF5 episode goes on' in error
    assert bags.status()['error'] and not bags.status()['recording']
    assert bags.close(summary()) is None and list(tmp_path.iterdir()) == []


def test_an_unknown_storage_is_refused():
    with pytest.raises(ValueError, match='bag_storage must be one of'):
        BagRecording('rosbag1')


def test_the_compression_reaches_each_episodes_bag(tmp_path):
    bags = BagRecording('mcap', 'zstd')
    bags.start(tmp_path / 'episode_000001.hdf5')
    assert bags.bag.compression == 'zstd'
    bags.close(summary(saved=False))
    with pytest.raises(ValueError, match='bag_compression must be one of'):
        BagRecording('mcap', 'gzip')
