"""VLAPolicy speed figures: training throughput and peak memory, select_action latency, clip-bert latency.

    python benchmarks/bench_policy.py [--data DIR] [--steps 30] [--threads 2]

* training throughput (samples/s) of a preset (default: the CPU default) over ``--steps`` real
  optimizer steps on ``--data`` (or a synthetic 224x224 dataset written with EpisodeWriter),
  with the same code path as ``train`` (frame cache, augmentation, AdamW), and the peak RSS;
* ``select_action`` latency p50/p99 of the CPU default with one thread (the controller's case);
* forward latency of the ``clip-bert`` architecture (CLIP ViT-B/32 + BERT-base, random weights:
  the same compute as the pretrained ones, which are not downloaded here) on CPU, and its
  training throughput on a GPU when one is present.

Prints the figures; asserts nothing. On a shared machine, report the load beside them.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def percentiles(samples_ms: list[float]) -> str:
    a = np.asarray(samples_ms)
    return f'p50 {np.percentile(a, 50):.2f} ms, p99 {np.percentile(a, 99):.2f} ms (n={a.size})'


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def clip_bert_random(**fields):
    """The clip-bert architecture with random weights (same compute; nothing is downloaded)."""
    from transformers import BertConfig, CLIPVisionConfig
    from vla_policy.config import preset
    return preset('clip-bert', clip_path=None, language_path=None,
                  vision_model_config=CLIPVisionConfig(patch_size=32).to_dict(),  # ViT-B/32 architecture
                  language_model_config=BertConfig().to_dict(), **fields)  # BERT-base architecture


def bench_training(data: Path, preset_name: str, steps: int, batch_size: int, device: str) -> None:
    from vla_policy.config import preset
    from vla_policy.dataset import EpisodeDataset, load_or_compute_stats, scan_episodes, split_episodes
    from vla_policy.images import augment_images
    from vla_policy.policy import VLAPolicy
    from vla_policy.training import EpochBatchSampler
    info = scan_episodes(data)
    train_ids, _ = split_episodes(len(info.episodes), 0.1, 0)
    make = clip_bert_random if preset_name == 'clip-bert' else (lambda **kw: preset(preset_name, **kw))
    cfg = make(joint_names=info.joint_names, action_names=info.action_names,
               state_dim=info.state_dim, action_dim=info.action_dim)
    policy = VLAPolicy(cfg).to(device)
    policy.set_normalization(load_or_compute_stats(info, train_ids, [Path(tempfile.mkdtemp())]))
    start = time.perf_counter()
    ds = EpisodeDataset(info, train_ids, cfg.n_obs_steps, cfg.chunk_size, cfg.image_size, progress=False)
    prep = time.perf_counter() - start
    loader = iter(torch.utils.data.DataLoader(ds, batch_sampler=EpochBatchSampler(len(ds), batch_size, 0),
                                              num_workers=0 if ds.frames is not None else 2))
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    policy.train()
    autocast = device.startswith('cuda')

    def step() -> None:
        batch = next(loader)
        batch['images'] = augment_images(batch['images'])
        with torch.autocast(device.split(':')[0], dtype=torch.bfloat16, enabled=autocast):
            loss, _ = policy(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    if autocast:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if autocast:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    cached = 'frames cached in RAM' if ds.frames is not None else 'lazy HDF5 reads'
    print(f'[train {preset_name} on {device}] {steps * batch_size / elapsed:.1f} samples/s '
          f'({elapsed / steps * 1000:.0f} ms/step, batch {batch_size}, {torch.get_num_threads()} threads, '
          f'{len(ds)} samples, {cached}, dataset prep {prep:.1f} s); peak RSS {peak_rss_mb():.0f} MB'
          + (f', peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB' if autocast else ''))


def bench_select_action(checkpoint_dir: Path | None) -> None:
    from vla_policy.config import preset
    from vla_policy.policy import VLAPolicy
    torch.set_num_threads(1)
    if checkpoint_dir is not None:
        policy = VLAPolicy.from_pretrained(checkpoint_dir)
        label = str(checkpoint_dir)
    else:
        joints = [f'joint{i}' for i in range(1, 7)] + ['gripper']
        policy = VLAPolicy(preset('cpu', joint_names=joints, state_dim=7, action_dim=7)).eval()
        label = 'cpu preset (untrained)'
    rng = np.random.default_rng(0)
    for mode in ('queue', 'temporal ensembling'):
        policy.config.temporal_ensemble = mode != 'queue'
        policy.reset()
        times = []
        for i in range(400):
            obs = {'image': rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
                   'joint_positions': rng.normal(size=policy.config.state_dim).astype(np.float32),
                   'instruction': 'pick up the red cube'}
            start = time.perf_counter()
            policy.select_action(obs)
            if i >= 20:
                times.append((time.perf_counter() - start) * 1000)
        print(f'[select_action {label}, {mode}, 224x224 input, 1 thread] {percentiles(times)}')


def bench_clip_bert(device: str) -> None:
    from vla_policy.policy import VLAPolicy
    joints = [f'joint{i}' for i in range(1, 7)] + ['gripper']
    cfg = clip_bert_random(joint_names=joints, state_dim=7, action_dim=7)
    policy = VLAPolicy(cfg).to(device).eval()
    n_params = sum(p.numel() for p in policy.parameters())
    T, K = cfg.n_obs_steps, cfg.chunk_size
    for threads in ((1, 2) if device == 'cpu' else (torch.get_num_threads(),)):
        torch.set_num_threads(threads)
        batch = {'images': torch.randint(0, 255, (1, T, 224, 224, 3), dtype=torch.uint8),
                 'joint_positions': torch.zeros(1, T, 7), 'instruction': ['pick up the red cube']}
        times = []
        for i in range(25):
            start = time.perf_counter()
            policy.predict_action_chunk(batch)
            if device.startswith('cuda'):
                torch.cuda.synchronize()
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
        print(f'[clip-bert forward, batch 1, {T} frames, {n_params / 1e6:.0f}M params, {device}, {threads} threads] '
              f'{percentiles(times)}')
        policy.reset()
        times = []
        rng = np.random.default_rng(0)
        for i in range(25):
            obs = {'image': rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), 'joint_positions': np.zeros(7),
                   'instruction': 'pick up the red cube'}
            start = time.perf_counter()
            policy.select_action(obs)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
        print(f'[clip-bert select_action (one new frame encoded), {device}, {threads} threads] {percentiles(times)}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, help='episode directory (default: a synthetic 224x224 dataset)')
    parser.add_argument('--preset', default='cpu', help='preset whose training throughput is measured')
    parser.add_argument('--steps', type=int, default=30, help='timed optimizer steps')
    parser.add_argument('--batch-size', type=int, default=64, help='samples per step')
    parser.add_argument('--threads', type=int, default=2, help='torch threads for training')
    parser.add_argument('--checkpoint', type=Path, help='time select_action of this checkpoint')
    parser.add_argument('--skip', nargs='*', default=[], choices=['train', 'act', 'clip'], help='parts to skip')
    args = parser.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    print(f'torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if 'train' not in args.skip:
        torch.set_num_threads(args.threads)
        data = args.data
        if data is None:
            from vla_policy.testing import write_tiny_dataset
            data = Path(tempfile.mkdtemp(prefix='vla_bench_data_'))
            write_tiny_dataset(data, episodes=20, steps=100, image_size=224)
        bench_training(data, args.preset, args.steps, args.batch_size, 'cpu')
        if device != 'cpu':
            bench_training(data, 'clip-bert', args.steps, args.batch_size, device)
    if 'act' not in args.skip:
        bench_select_action(args.checkpoint)
    if 'clip' not in args.skip:
        bench_clip_bert('cpu')
    print(f'load average {os.getloadavg()[0]:.1f} at the end')
    return 0


if __name__ == '__main__':
    sys.exit(main())
