import h5py
import numpy as np
import pytest
import torch

from vla_policy.dataset import (DataError, EpisodeDataset, compute_stats, load_or_compute_stats,
                                scan_episodes, split_episodes, window_indices)
from vla_policy.testing import write_tiny_dataset


def test_window_indices_pad_at_both_episode_edges():
    obs, obs_pad, act, act_pad = window_indices(0, 5, n_obs_steps=3, chunk_size=4)
    assert obs.tolist() == [0, 0, 0] and obs_pad.tolist() == [True, True, False]
    assert act.tolist() == [0, 1, 2, 3] and not act_pad.any()
    obs, obs_pad, act, act_pad = window_indices(3, 5, n_obs_steps=3, chunk_size=4)
    assert obs.tolist() == [1, 2, 3] and not obs_pad.any()
    assert act.tolist() == [3, 4, 4, 4] and act_pad.tolist() == [False, False, True, True]


@pytest.mark.parametrize('cache', [True, False])
def test_every_step_is_a_sample_with_the_right_window(tiny_data, cache):
    info = scan_episodes(tiny_data)
    ds = EpisodeDataset(info, [0, 1, 2], n_obs_steps=2, chunk_size=5, image_size=16, cache_images=cache,
                        progress=False)
    assert len(ds) == 60
    last = ds[19]  # last step of episode 0
    assert (last['episode'], last['step']) == (0, 19)
    assert last['images'].shape == (2, 16, 16, 3) and last['images'].dtype == torch.uint8
    assert last['action_is_pad'].tolist() == [False, True, True, True, True]
    from vla_collect.episode_io import open_episode
    with open_episode(info.episodes[0].path) as ep:
        actions, q = ep.actions[()], ep.joint_positions[()]
    assert np.allclose(last['actions'].numpy(), actions[[19, 19, 19, 19, 19]])
    assert np.allclose(last['joint_positions'].numpy(), q[[18, 19]])
    first = ds[20]  # first step of episode 1: the history repeats the first frame
    assert (first['episode'], first['step']) == (1, 0)
    assert first['obs_is_pad'].tolist() == [True, False]
    assert torch.equal(first['images'][0], first['images'][1])
    assert first['instruction'] == info.episodes[1].instruction


def test_lazy_reading_in_worker_processes(tiny_data):
    info = scan_episodes(tiny_data)
    ds = EpisodeDataset(info, [0, 1, 2], 2, 4, 16, cache_images=False, progress=False)
    assert ds.frames is None
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    seen = sum(len(b['instruction']) for b in loader)
    assert seen == 60


def test_split_is_by_episode_and_deterministic():
    train, val = split_episodes(10, 0.2, seed=3)
    assert sorted(train + val) == list(range(10)) and len(val) == 2
    assert split_episodes(10, 0.2, seed=3) == (train, val)
    assert split_episodes(1, 0.5, seed=0) == ([0], [])


def test_stats_are_computed_once_and_cached(tiny_data, tmp_path):
    info = scan_episodes(tiny_data)
    stats = load_or_compute_stats(info, [0, 1], [tmp_path / 'cache'])
    cached = list((tmp_path / 'cache').glob('stats_*.json'))
    assert len(cached) == 1
    assert load_or_compute_stats(info, [0, 1], [tmp_path / 'cache']) == stats
    direct = compute_stats(info, [0, 1])
    assert np.allclose(direct['action']['mean'], stats['action']['mean'])
    assert len(stats['state']['std']) == 7


def test_any_dimension_and_image_size(tiny_data_4d):
    info = scan_episodes(tiny_data_4d)
    assert (info.state_dim, info.action_dim, info.image_shape) == (3, 4, (24, 24, 3))


def test_empty_or_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match='does not exist'):
        scan_episodes(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='no episode_'):
        scan_episodes(tmp_path / 'empty')


def test_disagreeing_dimensions_name_the_file(tmp_path):
    write_tiny_dataset(tmp_path, episodes=2, steps=5)
    odd = write_tiny_dataset(tmp_path, episodes=1, steps=5, joint_names=['a', 'b'], first_index=2)[0]
    with pytest.raises(DataError, match=odd.name) as err:
        scan_episodes(tmp_path)
    assert 'joint_names' in str(err.value)


def test_nan_names_the_episode_and_step(tmp_path):
    paths = write_tiny_dataset(tmp_path, episodes=2, steps=8)
    with h5py.File(paths[1], 'r+') as f:
        f['actions'][5, 2] = np.nan
    with pytest.raises(DataError) as err:
        scan_episodes(tmp_path)
    assert paths[1].name in str(err.value) and 'step 5' in str(err.value)
    info = scan_episodes(tmp_path, skip_invalid=True)
    assert [e.path for e in info.episodes] == [paths[0]]


def test_a_batch_gathered_at_once_equals_the_collated_samples(tmp_path):
    from vla_policy.dataset import collate
    write_tiny_dataset(tmp_path / 'd', episodes=3, steps=9, cameras=['wrist'])
    info = scan_episodes(tmp_path / 'd')
    ds = EpisodeDataset(info, [0, 1, 2], n_obs_steps=3, chunk_size=4, image_size=16, cache_images=True,
                        progress=False, cameras=['wrist'])
    indices = [0, 8, 9, 17, 26, 13, 4]
    batch = collate(ds.__getitems__(indices))
    one_by_one = collate([ds[i] for i in indices])
    assert sorted(batch) == sorted(one_by_one)
    for key, value in one_by_one.items():
        if isinstance(value, torch.Tensor):
            assert batch[key].dtype == value.dtype and torch.equal(batch[key], value), key
        else:
            assert batch[key] == value, key
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[indices], collate_fn=collate)
    assert torch.equal(next(iter(loader))['images_wrist'], one_by_one['images_wrist'])
