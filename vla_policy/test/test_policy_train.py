import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla_policy import VLAPolicy
from vla_policy.train import main, run
from vla_policy.training import EpochBatchSampler, get_lr
from vla_policy.testing import write_tiny_dataset

FAST = ['--preset', 'tiny', '--batch-size', '8', '--warmup-steps', '5', '--log-every', '5', '--workers', '0',
        '--threads', '1']


def test_lr_schedule_warms_up_then_decays():
    lrs = [get_lr(s, 1.0, 10, 100, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_batch_sampler_covers_each_epoch_and_resumes_mid_epoch():
    full = EpochBatchSampler(20, 4, seed=1)
    it = iter(full)
    epoch0 = [next(it) for _ in range(5)]
    assert sorted(sum(epoch0, [])) == list(range(20))
    later = iter(EpochBatchSampler(20, 4, seed=1, start_batch=3))
    assert next(later) == epoch0[3]
    ranks = [next(iter(EpochBatchSampler(20, 4, seed=1, rank=r, world=2))) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])


def test_tiny_dataset_is_overfit_and_artifacts_are_written(tiny_data, tmp_path):
    out = tmp_path / 'run'
    result = run(['--data', str(tiny_data), '--out', str(out), '--steps', '150', '--lr', '3e-3',
                  '--val-fraction', '0', '--no-augment', '--checkpoint-every', '100', *FAST])
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    first, last = rows[0]['loss'], rows[-1]['loss']
    assert last < first / 5, (first, last)
    for name in ('metrics.csv', 'loss.png', 'train_config.json', 'checkpoint/model.safetensors',
                 'checkpoint/config.json', 'checkpoint/training_state.pt', 'checkpoint/metadata.json'):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / 'checkpoints').iterdir()) == ['step_0000100', 'step_0000150']
    meta = json.loads((out / 'checkpoint' / 'metadata.json').read_text())
    assert meta['step'] == 150 and meta['dataset']['episodes'] == 3 and 'fingerprint' in meta['dataset']
    assert result['step'] == 150
    # the trained policy reproduces a training action in closed form (robot units)
    policy = VLAPolicy.from_pretrained(out)
    from vla_collect.episode_io import open_episode
    with open_episode(sorted(tiny_data.glob('*.hdf5'))[0]) as ep:
        obs = {'image': ep.images[0], 'joint_positions': ep.joint_positions[0],
               'instruction': ep.language_command}
        target = ep.actions[0]
    assert np.abs(policy.select_action(obs) - target).mean() < 0.25


def test_resume_continues_the_same_run(tiny_data, tmp_path):
    common = ['--data', str(tiny_data), '--steps', '12', '--val-fraction', '0.34', '--val-every', '4',
              '--ema', '0.9', *FAST]
    run([*common, '--out', str(tmp_path / 'straight')])
    run([*common, '--out', str(tmp_path / 'split'), '--max-minutes', '0'])  # stops (and saves) after one step
    state = torch.load(tmp_path / 'split' / 'checkpoint' / 'training_state.pt', weights_only=True)
    assert state['step'] == 1
    run([*common, '--out', str(tmp_path / 'split'), '--resume'])
    a = load_file(str(tmp_path / 'straight' / 'checkpoint' / 'model.safetensors'))
    b = load_file(str(tmp_path / 'split' / 'checkpoint' / 'model.safetensors'))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    rows = [json.loads(x) for x in (tmp_path / 'split' / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == sorted(r['step'] for r in rows)


def test_dimension_independent_training(tiny_data_4d, tmp_path):
    run(['--data', str(tiny_data_4d), '--out', str(tmp_path / 'r'), '--steps', '3', *FAST])
    policy = VLAPolicy.from_pretrained(tmp_path / 'r')
    assert (policy.config.state_dim, policy.config.action_dim) == (3, 4)
    action = policy.select_action({'image': np.zeros((24, 24, 3), np.uint8), 'joint_positions': np.zeros(3),
                                   'instruction': 'pick up the red cube'})
    assert action.shape == (4,)


def test_extra_cameras_are_found_in_the_data_and_required_at_inference(tmp_path, tiny_data, capsys):
    data = tmp_path / 'two_cams'
    write_tiny_dataset(data, episodes=3, steps=12, cameras=['wrist'])
    run(['--data', str(data), '--out', str(tmp_path / 'r'), '--steps', '3', *FAST])
    policy = VLAPolicy.from_pretrained(tmp_path / 'r')
    assert policy.config.extra_cameras == ['wrist'] and 'wrist' in policy.extra_vision
    obs = {'image': np.zeros((32, 32, 3), np.uint8), 'joint_positions': np.zeros(7),
           'instruction': 'pick up the red cube'}
    with pytest.raises(ValueError, match='image_wrist'):
        policy.select_action(obs)
    assert policy.select_action({**obs, 'image_wrist': np.zeros((48, 48, 3), np.uint8)}).shape == (7,)
    # --cameras none trains on the main image only; a camera the data lacks is a clear error
    run(['--data', str(data), '--out', str(tmp_path / 'main_only'), '--steps', '2', '--cameras', 'none', *FAST])
    assert VLAPolicy.from_pretrained(tmp_path / 'main_only').config.extra_cameras == []
    assert main(['--data', str(tiny_data), '--out', str(tmp_path / 'x'), '--cameras', 'wrist', *FAST]) == 1
    assert "camera(s) ['wrist'] are not recorded" in capsys.readouterr().err


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, tiny_data, tiny_data_4d, capsys):
    (tmp_path / 'empty').mkdir()
    assert main(['--data', str(tmp_path / 'empty'), '--out', str(tmp_path / 'o'), *FAST]) == 1
    assert 'no episode_' in capsys.readouterr().err
    run(['--data', str(tiny_data), '--out', str(tmp_path / 'r7'), '--steps', '2', *FAST])
    # resuming a 7-joint checkpoint on 3-joint data
    assert main(['--data', str(tiny_data_4d), '--out', str(tmp_path / 'r7'), '--resume', *FAST]) == 1
    err = capsys.readouterr().err
    assert 'does not match the data' in err and 'joint names' in err
    assert main(['--data', str(tiny_data), '--out', str(tmp_path / 'x'), '--set', 'chunk=3', *FAST]) == 1
    assert 'unknown model setting' in capsys.readouterr().err


def test_ddp_with_gloo_in_two_cpu_processes(tiny_data, tmp_path):
    out = tmp_path / 'ddp'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'vla_policy.train', '--data', str(tiny_data), '--out', str(out), '--steps', '6',
           '--device', 'cpu', *FAST]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / 'checkpoint' / 'metadata.json').read_text())
    assert meta['step'] == 6
    rows = [json.loads(x) for x in (out / 'metrics.jsonl').read_text().splitlines()]
    assert rows and rows[-1]['step'] == 6  # only rank 0 logs
    VLAPolicy.from_pretrained(out)
