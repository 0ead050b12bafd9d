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
from vla_policy.sampler import EpochBatchSampler
from vla_policy.schedule import MAX_WARMUP_SHARE, Schedule, get_lr
from vla_policy.testing import write_tiny_dataset

FAST = ['--preset', 'tiny', '--batch-size', '8', '--warmup-steps', '5', '--log-every', '5', '--workers', '0',
        '--threads', '1']


class FakeClock:
    """A wall clock that advances ``dt`` seconds every time it is read: a deterministic 'machine'."""

    def __init__(self, dt: float) -> None:
        self.dt, self.now = dt, 0.0

    def __call__(self) -> float:
        self.now += self.dt
        return self.now


def test_lr_schedule_warms_up_then_decays():
    sched = Schedule(1.0, warmup_steps=10, min_ratio=0.01, total_steps=100)
    lrs = [sched.lr(s, sched.progress(s, 0.0)) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.01, abs=1e-3)
    # the pure helper: warmup in steps times a cosine over progress
    assert get_lr(4, 0.0, 2.0, 10, 0.1, 0.0) == pytest.approx(1.0)
    assert get_lr(50, 1.0, 2.0, 10, 0.1, 0.0) == pytest.approx(0.0)
    assert get_lr(50, 0.55, 2.0, 10, 0.1, 0.0) == pytest.approx(1.0)


def test_time_schedule_ends_annealed_whatever_the_step_count():
    for step_s in (0.1, 1.0, 7.0):  # a fast, a slow and a very slow machine
        sched = Schedule(1.0, warmup_steps=20, min_ratio=0.01, budget_s=600.0)
        step, lrs, elapsed = 0, [], 0.0
        while (progress := sched.progress(step, elapsed)) < 1.0:
            lrs.append(sched.lr(step, progress))
            step, elapsed = step + 1, elapsed + step_s
        assert lrs[-1] < 0.05, (step_s, lrs[-1])
        assert max(lrs) <= 1.0 and max(lrs) > 0.5
        peak = lrs.index(max(lrs))
        assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
        assert sched.decay_start <= MAX_WARMUP_SHARE
    # a warmup longer than the run is cut: the decay starts at a quarter of the schedule anyway
    long_warmup = Schedule(1.0, warmup_steps=1000, min_ratio=0.01, total_steps=100)
    assert long_warmup.lr(99, long_warmup.progress(99, 0.0)) < 0.05
    # given a step count and a budget, whichever ends first defines the end
    both = Schedule(1.0, 0, 0.01, total_steps=100, budget_s=60.0)
    assert both.progress(50, 45.0) == pytest.approx(0.75) and both.progress(90, 30.0) == pytest.approx(0.9)


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


def test_resume_continues_the_same_run(tiny_data, tmp_path, monkeypatch):
    from vla_policy.train import Trainer
    common = ['--data', str(tiny_data), '--steps', '12', '--val-fraction', '0.34', '--val-every', '4',
              '--ema', '0.9', *FAST]
    run([*common, '--out', str(tmp_path / 'straight')])
    real_step = Trainer.train_step

    def interrupted(self, batch, progress):  # a Ctrl-C during step 6, after the checkpoint of step 4
        if self.step == 5:
            raise KeyboardInterrupt
        return real_step(self, batch, progress)

    monkeypatch.setattr(Trainer, 'train_step', interrupted)
    assert main([*common, '--out', str(tmp_path / 'split'), '--checkpoint-every', '4']) == 130
    monkeypatch.setattr(Trainer, 'train_step', real_step)
    state = torch.load(tmp_path / 'split' / 'checkpoint' / 'training_state.pt', weights_only=True)
    assert state['step'] == 4
    run([*common, '--out', str(tmp_path / 'split'), '--resume'])
    a = load_file(str(tmp_path / 'straight' / 'checkpoint' / 'model.safetensors'))
    b = load_file(str(tmp_path / 'split' / 'checkpoint' / 'model.safetensors'))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    rows = [json.loads(x) for x in (tmp_path / 'split' / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == sorted(r['step'] for r in rows)


def test_time_budget_finishes_the_schedule_and_the_checkpoint_acts(tiny_data, tmp_path):
    out = tmp_path / 'budget'
    # 0.25 s per clock read (a few reads a step): ~30 steps in a 0.25-minute budget on this fake machine
    result = run(['--data', str(tiny_data), '--out', str(out), '--max-minutes', '0.25', '--warmup-steps', '4',
                  '--checkpoint-every', '10', '--keep-checkpoints', '100', '--val-every', '10', *FAST[4:]],
                 clock=FakeClock(0.25))
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    lrs = [r['lr'] for r in rows if 'lr' in r]
    sched = result['schedule']
    assert lrs[-1] < 0.05 * sched['peak_lr'] and rows[-1]['progress'] > 0.9
    assert sched['finished'] and sched['progress'] == 1.0 and sched['mode'] == 'time'
    assert sched['last_lr_ratio'] < 0.05 and sched['steps_done'] == result['step'] > 10
    assert sched['samples_per_s'] > 0
    meta = json.loads((out / 'checkpoint' / 'metadata.json').read_text())
    assert meta['schedule']['finished'] and meta['schedule']['budget_s'] == 15.0 and meta['step'] == result['step']
    assert (out / 'checkpoints' / 'step_0000010').is_dir()  # periodic checkpoints still written
    policy = VLAPolicy.from_pretrained(out)
    action = policy.select_action({'image': np.zeros((32, 32, 3), np.uint8), 'joint_positions': np.zeros(7),
                                   'instruction': 'pick up the red cube'})
    assert action.shape == (7,) and np.all(np.isfinite(action))


def test_steps_and_budget_end_with_whichever_comes_first(tiny_data, tmp_path):
    common = ['--data', str(tiny_data), '--steps', '30', '--max-minutes', '0.25', '--warmup-steps', '4', *FAST[4:]]
    fast = run([*common, '--out', str(tmp_path / 'fast')], clock=FakeClock(0.001))
    assert fast['step'] == 30 and fast['schedule']['last_lr_ratio'] < 0.05
    slow = run([*common, '--out', str(tmp_path / 'slow')], clock=FakeClock(0.25))
    assert 5 < slow['step'] < 30 and slow['schedule']['finished'] and slow['schedule']['last_lr_ratio'] < 0.05


def test_too_short_a_budget_is_refused_with_the_minimum(tiny_data, tmp_path, capsys):
    common = ['--data', str(tiny_data), *FAST]
    assert main([*common, '--out', str(tmp_path / 'a'), '--max-minutes', '0']) == 1
    assert '--max-minutes must be > 0' in capsys.readouterr().err
    assert main([*common, '--out', str(tmp_path / 'b'), '--steps', '5', '--min-lr-ratio', '0.1']) == 1
    assert '--min-lr-ratio must be in [0, 0.05)' in capsys.readouterr().err
    # 1 s per clock read: a step costs several seconds, 0.2 min cannot hold 5 warmup steps and a decay
    from vla_policy import train
    with pytest.raises(ValueError, match=r'too short on this machine.*need at least --max-minutes \d'):
        train.run([*common, '--out', str(tmp_path / 'c'), '--max-minutes', '0.2'], clock=FakeClock(1.0))
    # a budget that is only a cap on a step count that ends first is not judged
    assert train.run([*common, '--out', str(tmp_path / 'd'), '--max-minutes', '0.2', '--steps', '2'],
                     clock=FakeClock(0.1))['step'] == 2


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


def test_the_learning_rate_defaults_to_the_presets():
    from vla_policy.config import preset_lr
    from vla_policy.train import build_parser, train_config_from_args
    lr = lambda *a: train_config_from_args(build_parser().parse_args(['--data', 'd', *a])).lr  # noqa: E731
    assert lr() == preset_lr('cpu') == 1e-3
    assert lr('--preset', 'clip-bert') == preset_lr('clip-bert') == 5e-4
    assert lr('--preset', 'clip-bert', '--lr', '2e-4') == 2e-4


def test_seeds_trains_one_model_per_training_seed(tiny_data, tmp_path):
    from vla_policy.policy import CheckpointError, resolve_checkpoint
    out = tmp_path / 'multi'
    assert main(['--data', str(tiny_data), '--out', str(out), '--steps', '3', '--seeds', '2',
                 '--seed', '5', *FAST]) == 0
    summary = json.loads((out / 'seeds.json').read_text())
    assert summary['seeds'] == [5, 6] and [r['run'] for r in summary['runs']] == ['seed_5', 'seed_6']
    a = load_file(str(out / 'seed_5' / 'checkpoint' / 'model.safetensors'))
    b = load_file(str(out / 'seed_6' / 'checkpoint' / 'model.safetensors'))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # different initialisations and batches
    for seed in (5, 6):
        cfg = json.loads((out / f'seed_{seed}' / 'train_config.json').read_text())['train']
        assert cfg['seed'] == seed and cfg['out'] == str(out / f'seed_{seed}')
    with pytest.raises(CheckpointError, match='--seeds'):
        resolve_checkpoint(out)
    assert main(['--data', str(tiny_data), '--out', str(out), '--seeds', '0', *FAST]) == 1


def test_state_noise_perturbs_the_joint_input_by_its_share_of_each_joints_std(tiny_data, tmp_path, monkeypatch,
                                                                             capsys):
    """--state-noise F: while training, the model sees joint positions plus N(0, (F * std)^2) per joint
    (std over the data); the targets, validation and inference see the real ones."""
    from vla_policy.train import Trainer
    pairs = []
    real_step, real_forward = Trainer.train_step, VLAPolicy.forward

    def step(self, batch, progress):
        pairs.append([batch['joint_positions'].clone(), None, self.model.state_norm.std.clone()])
        return real_step(self, batch, progress)

    def forward(self, batch):
        if self.training and pairs and pairs[-1][1] is None:
            pairs[-1][1] = batch['joint_positions'].detach().cpu().clone()
        return real_forward(self, batch)

    monkeypatch.setattr(Trainer, 'train_step', step)
    monkeypatch.setattr(VLAPolicy, 'forward', forward)
    run(['--data', str(tiny_data), '--steps', '20', '--state-noise', '0.5', '--out', str(tmp_path / 'r'), *FAST])
    assert len(pairs) == 20 and all(seen is not None for _, seen, _ in pairs)
    z = torch.cat([((seen - clean) / std).reshape(-1) for clean, seen, std in pairs])
    assert abs(float(z.std()) - 0.5) < 0.05 and abs(float(z.mean())) < 0.05
    assert main(['--data', str(tiny_data), '--steps', '2', '--state-noise', '-1', '--out', str(tmp_path / 'bad'),
                 *FAST]) != 0
    assert '--state-noise must be a finite fraction >= 0, got -1.0' in capsys.readouterr().err
