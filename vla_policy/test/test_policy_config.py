import pytest

from vla_policy.config import PRESETS, VLAConfig, preset
from vla_policy.normalization import Normalizer
import numpy as np
import torch


@pytest.mark.parametrize('name', PRESETS)
def test_presets_are_valid_and_round_trip(tmp_path, name):
    cfg = preset(name, joint_names=['a', 'b'], state_dim=2, action_dim=3)
    cfg.save(tmp_path / 'c.json')
    assert VLAConfig.load(tmp_path / 'c.json') == cfg


@pytest.mark.parametrize('field, value, words', [
    ('vision_encoder', 'resnet', 'vision_encoder'),
    ('d_model', 30, 'multiple of n_heads'),
    ('n_action_steps', 50, 'chunk_size'),
    ('chunk_size', 0, 'chunk_size'),
])
def test_bad_config_names_the_field(field, value, words):
    with pytest.raises(ValueError, match=words):
        VLAConfig(**{field: value})


def test_unknown_fields_and_presets_are_rejected():
    with pytest.raises(ValueError, match='unknown VLAConfig field'):
        VLAConfig.from_dict({'chunk': 3})
    with pytest.raises(ValueError, match='unknown preset'):
        preset('gpt')
    with pytest.raises(ValueError, match='joint_names'):
        VLAConfig(joint_names=['a'], state_dim=2, action_dim=2)


def test_normalization_round_trip_and_constant_dimension_guard():
    norm = Normalizer(3, eps=1e-3)
    norm.set_stats([1.0, -2.0, 0.5], [0.5, 0.0, 2.0])  # middle dimension constant
    assert norm.std.tolist() == [0.5, 1.0, 2.0]
    x = torch.tensor([[1.5, -2.0, 4.5], [0.0, 3.0, -1.0]])
    z = norm.normalize(x)
    assert torch.isfinite(z).all()
    assert torch.allclose(z[0], torch.tensor([1.0, 0.0, 2.0]))
    assert torch.allclose(norm.unnormalize(z), x, atol=1e-6)
    with pytest.raises(ValueError, match='shape'):
        norm.set_stats(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match='finite'):
        norm.set_stats([np.nan, 0, 0], [1, 1, 1])
