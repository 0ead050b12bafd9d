"""Every importer's output trains with `vla train` unchanged (issue 13): a rosbag2/MCAP bag, a
LeRobot v3 dataset and ALOHA files, each through `vla dataset import`, then a few steps of the
tiny preset through `vla train`, and the checkpoint answers an imported observation."""
import json

import numpy as np
import pytest
import yaml

from vla_bringup.cli import main as vla
from vla_collect.episode_io import list_episodes, open_episode
from vla_collect.testing import BAG_MAPPING, simulated_episode, write_aloha_file, write_bag

STEPS = 3  # optimizer steps: enough to show the data feeds the model end to end
TRAIN = ['--preset', 'tiny', '--steps', str(STEPS), '--batch-size', '4', '--warmup-steps', '1',
         '--log-every', '1', '--val-fraction', '0', '--workers', '0', '--threads', '1',
         '--checkpoint-every', '1000']


def rosbag_source(tmp_path):
    pytest.importorskip('rosbags', reason='rosbags is in requirements.txt')
    bag = write_bag(tmp_path / 'bag', simulated_episode(steps=12))
    mapping = tmp_path / 'mapping.yaml'
    mapping.write_text(yaml.safe_dump(BAG_MAPPING))
    return ['--format', 'rosbag', str(bag)], ['--mapping', str(mapping)]


def lerobot_source(tmp_path):
    pytest.importorskip('pyarrow', reason='pyarrow is in requirements.txt')
    pytest.importorskip('av', reason='av (PyAV) is in requirements.txt')
    from vla_policy.testing import write_tiny_dataset
    write_tiny_dataset(tmp_path / 'episodes', episodes=2, steps=10, image_size=32, cameras=['wrist'])
    dataset = tmp_path / 'lerobot'
    assert vla(['dataset', 'export', '--format', 'lerobot', str(tmp_path / 'episodes'),
                str(dataset), '--quiet']) == 0
    return ['--format', 'lerobot', str(dataset)], []


def aloha_source(tmp_path):
    src = tmp_path / 'aloha'
    src.mkdir()
    for i in range(2):
        write_aloha_file(src / f'episode_{i}.hdf5', steps=10, seed=i)
    return ['--format', 'aloha', str(src)], ['--instruction', 'transfer the cube']


@pytest.mark.parametrize('make_source', [rosbag_source, lerobot_source, aloha_source],
                         ids=['rosbag', 'lerobot', 'aloha'])
def test_imported_episodes_train_with_vla_train(make_source, tmp_path):
    source, options = make_source(tmp_path)
    data, run = tmp_path / 'imported', tmp_path / 'run'
    assert vla(['dataset', 'import', *source, str(data), *options, '--quiet']) == 0
    assert list_episodes(data)
    assert vla(['dataset', 'validate', str(data)]) == 0
    assert vla(['train', '--data', str(data), '--out', str(run), *TRAIN]) == 0
    meta = json.loads((run / 'checkpoint' / 'metadata.json').read_text())
    assert meta['step'] == STEPS and meta['dataset']['episodes'] == len(list_episodes(data))
    losses = [json.loads(line)['loss'] for line in (run / 'metrics.jsonl').read_text().splitlines()
              if 'loss' in json.loads(line)]
    assert losses and all(np.isfinite(losses))
    from vla_policy import VLAPolicy
    policy = VLAPolicy.from_pretrained(run / 'checkpoint', device='cpu')
    with open_episode(list_episodes(data)[0]) as ep:
        obs = {'image': ep.images[0], 'joint_positions': ep.joint_positions[0],
               'instruction': ep.language_command}
        for camera in ep.cameras:
            obs[f'image_{camera}'] = ep.camera_images(camera)[0]
        width = len(ep.action_names)
    policy.reset()
    action = policy.select_action(obs)
    assert action.shape == (width,) and np.all(np.isfinite(action))
