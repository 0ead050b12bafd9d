"""What the trainer derives from the data instead of from one scene (issue 17 part 2), ROS-free."""
import argparse

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
