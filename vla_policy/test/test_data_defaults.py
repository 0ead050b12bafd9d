"""What the trainer derives from the data instead of from one scene (issue 17 part 2), ROS-free."""
import argparse
import json

import numpy as np
import pytest
import torch

from vla_policy.config import preset
from vla_policy.dataset import scan_episodes
from vla_policy.normalization import Normalizer
from vla_policy.testing import write_tiny_dataset
from vla_policy.train_config import PRESET_FPS, add_model_options, build_model_config, rate_defaults


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize('fps,chunk,steps', [(30.0, 16, 8), (10.0, 5, 3), (15.0, 8, 4), (50.0, 27, 13),
                                             (100.0, 53, 27), (1.0, 1, 1)])
def test_the_cpu_presets_chunk_is_a_duration_in_steps_of_the_datas_rate(fps, chunk, steps):
    cpu = preset('cpu')
    assert (cpu.chunk_size, cpu.n_action_steps, PRESET_FPS) == (16, 8, 30.0)  # stated at 30 Hz
    assert rate_defaults(cpu, fps, given={}) == {'chunk_size': chunk, 'n_action_steps': steps}
    assert chunk / fps == pytest.approx(16 / 30, abs=0.5 / fps)  # the same plan length in seconds


def test_given_values_are_kept_and_action_steps_never_exceed_the_chunk():
    cpu = preset('cpu')
    assert rate_defaults(cpu, 10.0, given={'chunk_size': 20}) == {'n_action_steps': 3}
    assert rate_defaults(cpu, 60.0, given={'chunk_size': 20, 'n_action_steps': 2}) == {}
    assert rate_defaults(cpu, 100.0, given={'chunk_size': 4}) == {'n_action_steps': 4}
    with pytest.raises(ValueError, match='positive'):
        rate_defaults(cpu, 0.0, given={})


@pytest.mark.parametrize('fps,expected', [(30.0, (16, 8)), (10.0, (5, 3))])
def test_build_model_config_reads_the_rate_from_the_episodes(tmp_path, fps, expected):
    write_tiny_dataset(tmp_path, episodes=2, steps=12, fps=fps)
    config = build_model_config(_args(), scan_episodes(tmp_path))
    assert (config.fps, config.chunk_size, config.n_action_steps) == (fps, *expected)
    given = build_model_config(_args('--set', 'chunk_size=7'), scan_episodes(tmp_path))
    assert given.chunk_size == 7 and given.n_action_steps == min(7, expected[1])


def test_small_delta_actions_are_scaled_and_still_dimensions_only_centred():
    cfg = preset('cpu')
    # EE deltas of a few mm a step (measured on the workbench's ee_delta demonstrations: std
    # 0.0045-0.005 m), a joint the demonstrations hold still (std 1.4e-4 rad in the cube demo),
    # a gripper opening target (std 0.04 m)
    std = np.array([0.0045, 0.005, 0.017, 1.4e-4, 0.04])
    actions = Normalizer(5, cfg.action_norm_eps)
    actions.set_stats(np.zeros(5), std)
    np.testing.assert_allclose(actions.std.numpy(), [0.0045, 0.005, 0.017, 1.0, 0.04], rtol=1e-6)
    x = torch.tensor([[0.0045, -0.005, 0.017, 1.4e-4, 0.04]])
    np.testing.assert_allclose(actions.normalize(x).numpy(), [[1.0, -1.0, 1.0, 1.4e-4, 1.0]], rtol=1e-5)
    states = Normalizer(5, cfg.norm_eps)  # inputs keep ACT's 1e-2 floor: joint noise is not amplified
    states.set_stats(np.zeros(5), std)
    np.testing.assert_allclose(states.std.numpy(), [1.0, 1.0, 0.017, 1.0, 0.04], rtol=1e-6)


def test_a_two_valued_action_is_found_in_the_data_and_classified(tmp_path):
    """A +/-1 gripper effort: the trainer finds its levels, learns it with a logit, and the
    policy outputs exactly one of the two levels (a regression would average them)."""
    from vla_collect.episode_io import open_episode
    from vla_policy import VLAPolicy
    from vla_policy.dataset import compute_stats
    from vla_policy.train import run
    data = tmp_path / 'data'
    write_tiny_dataset(data, episodes=3, steps=24, binary_actions=[3])
    info = scan_episodes(data)
    levels = compute_stats(info, [0, 1, 2])['action']['levels']
    assert levels[3] == [-1.0, 1.0] and all(lv is None for i, lv in enumerate(levels) if i != 3)
    out = tmp_path / 'run'
    run(['--data', str(data), '--out', str(out), '--steps', '150', '--lr', '3e-3', '--val-fraction', '0',
         '--no-augment', '--preset', 'tiny', '--batch-size', '8', '--warmup-steps', '5', '--log-every', '5',
         '--workers', '0', '--threads', '1'])
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert rows[-1]['binary_accuracy'] > 0.9, rows[-1]
    policy = VLAPolicy.from_pretrained(out)
    assert policy.config.binary_actions == {info.action_names[3]: [-1.0, 1.0]}
    hits = total = 0
    for path in sorted(data.glob('*.hdf5')):
        with open_episode(path) as ep:
            policy.reset()
            for t in range(0, 24, 3):
                obs = {'image': ep.images[t], 'joint_positions': ep.joint_positions[t],
                       'instruction': ep.language_command}
                chunk = policy.predict_chunk(obs)
                assert set(np.unique(chunk[:, 3]).tolist()) <= {-1.0, 1.0}  # a level, never a blend
                hits += int(chunk[0, 3] == ep.actions[t][3])
                total += 1
    assert hits / total > 0.8, (hits, total)
    # a config that names no binary action (older checkpoints: None) regresses every dimension
    assert VLAPolicy(preset('tiny', state_dim=4, action_dim=4, binary_actions={}),
                     load_pretrained=False).binary_mask.sum() == 0


def test_binary_action_levels_are_checked():
    with pytest.raises(ValueError, match='binary_actions'):
        preset('cpu', binary_actions={'gripper': [1.0, -1.0]})
    with pytest.raises(ValueError, match='binary_actions'):
        preset('cpu', action_names=['a'], action_dim=1, binary_actions={'gripper': [0.0, 1.0]})


def _episodes_with_ee_actions(directory, episodes=3, steps=16):
    """Episodes as `vla collect --action-mode ee_delta` records them: joint targets in /actions,
    the end-effector command in /actions_ee."""
    from vla_collect.episode_io import EpisodeWriter
    from vla_sim import EE_ACTION_NAMES, JOINT_NAMES
    rng = np.random.default_rng(0)
    for e in range(episodes):
        writer = EpisodeWriter(directory / f'episode_{e:06d}.hdf5', joint_names=JOINT_NAMES,
                               action_names=JOINT_NAMES, image_shape=(32, 32, 3), fps=30.0,
                               language_command='touch the red marker', ee_action_names=EE_ACTION_NAMES)
        with writer:
            for t in range(steps):
                q = rng.normal(0, 0.3, 7)
                writer.append(np.full((32, 32, 3), 9 * t, np.uint8), q, np.zeros(7), q + 0.01,
                              timestamp=t / 30, action_ee=np.r_[rng.normal(0, 0.004, 6), 0.04])
            writer.close(success=True)


def test_end_effector_actions_of_a_ros_recording_are_learnt_with_action_space_ee_delta(tmp_path):
    from vla_policy.dataset import EpisodeDataset, compute_stats
    from vla_policy.train import run
    from vla_sim import EE_ACTION_NAMES, JOINT_NAMES
    data = tmp_path / 'data'
    data.mkdir()
    _episodes_with_ee_actions(data)
    joint, ee = scan_episodes(data), scan_episodes(data, action_space='ee_delta')
    assert joint.action_names == list(JOINT_NAMES) and ee.action_names == list(EE_ACTION_NAMES)
    assert joint.fingerprint() != ee.fingerprint()  # their statistics are cached apart
    assert max(compute_stats(ee, [0, 1, 2])['action']['std'][:3]) < 0.01  # deltas, not joint targets
    sample = EpisodeDataset(ee, [0], 1, 4, 16, cache_images=False, progress=False)[0]
    assert sample['actions'].shape == (4, 7)
    out = tmp_path / 'run'
    run(['--data', str(data), '--out', str(out), '--steps', '3', '--action-space', 'ee_delta', '--preset', 'tiny',
         '--batch-size', '4', '--warmup-steps', '1', '--workers', '0', '--threads', '1', '--val-fraction', '0'])
    from vla_policy import VLAPolicy
    assert VLAPolicy.from_pretrained(out).config.action_names == list(EE_ACTION_NAMES)
    # joint-only recordings cannot give end-effector actions: a clear error naming the file
    plain = tmp_path / 'plain'
    write_tiny_dataset(plain, episodes=1, steps=8)
    from vla_policy.dataset import DataError
    with pytest.raises(DataError, match='actions_ee'):
        scan_episodes(plain, action_space='ee_delta')


def test_the_clip_bert_chunk_outlasts_its_inference_latency():
    # ~700-780 ms p99 inside the asynchronous controller on 2 CPU cores (issue 15): the plan must
    # outlast one inference plus the next
    clip = preset('clip-bert')
    assert clip.chunk_size / PRESET_FPS > 2 * 0.78
    assert rate_defaults(clip, 10.0, given={})['chunk_size'] / 10.0 == pytest.approx(48 / 30, abs=0.05)
