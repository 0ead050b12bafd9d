"""VLAPolicy speed figures: training throughput and peak memory, select_action latency, clip-bert latency.

    python benchmarks/bench_policy.py [--data DIR] [--steps 30] [--threads 2]
    python benchmarks/bench_policy.py --data DIR --compare HEAD~3 [--rounds 4] [--isa avx2]

``--compare REV`` measures the trainer's own step (``Trainer.train_step``: data, augmentation,
forward, backward, clipping, AdamW) of the working tree and of git revision ``REV`` side by side:
one process per side, each preparing the data once, then alternating timed windows (old, new,
old, new...) so machine load hits both alike; it prints the median samples/s of each, the ratio
and the peak RSS. ``--isa avx2`` restricts both to the AVX2 kernels (ATEN_CPU_CAPABILITY=avx2,
ONEDNN_MAX_CPU_ISA=AVX2), as on an AVX2-only machine.

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
    """The trainer's own step (Trainer.train_step: data, augmentation, forward, backward, AdamW) on
    every camera of ``data``; clip-bert with random weights (nothing is downloaded)."""
    from vla_policy import train as T
    from vla_policy.dataset import scan_episodes
    from vla_policy.sampler import EpochBatchSampler
    out = tempfile.mkdtemp(prefix='vla_bench_run_')
    args = T.build_parser().parse_args(['--data', str(data), '--out', out, '--steps', '1000000', '--preset',
                                        preset_name if preset_name != 'clip-bert' else 'cpu',
                                        '--batch-size', str(batch_size), '--device', device])
    cfg = T.train_config_from_args(args)
    info = scan_episodes(cfg.data)
    model_config = T.build_model_config(args, info)
    if preset_name == 'clip-bert':
        model_config = clip_bert_random(**{k: getattr(model_config, k) for k in (
            'joint_names', 'action_names', 'state_dim', 'action_dim', 'fps', 'source_image_size', 'extra_cameras')})
    start = time.perf_counter()
    trainer = T.Trainer(cfg, model_config, info, T.Dist(), torch.device(device), None)
    prep = time.perf_counter() - start
    loader = iter(trainer._loader(trainer.train_set, EpochBatchSampler(len(trainer.train_set), batch_size, 0)))
    trainer.model.train()
    cuda = device.startswith('cuda')

    def step() -> None:
        trainer.train_step(next(loader), 0.5)

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    ds = trainer.train_set
    cached = 'frames cached in RAM' if ds.frames is not None else 'lazy HDF5 reads'
    cams = ', '.join(['main', *model_config.extra_cameras])
    print(f'[train {preset_name} on {device}, cameras {cams}] {steps * batch_size / elapsed:.1f} samples/s '
          f'({elapsed / steps * 1000:.0f} ms/step, batch {batch_size}, {torch.get_num_threads()} threads, '
          f'{torch.backends.cpu.get_cpu_capability()} kernels, {len(ds)} samples, {cached}, dataset prep {prep:.1f} s); '
          f'peak RSS {peak_rss_mb():.0f} MB'
          + (f', peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB' if cuda else ''))


# -- old vs new trainer, side by side ------------------------------------------------------------
ISA_ENV = {'avx2': {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2'}}


def trainer_worker(data: Path, steps: int, threads: int, extra: list[str]) -> None:
    """Child of --compare: build the Trainer of the vla_policy on sys.path, then time ``steps``
    steps each time a line arrives on stdin; one JSON line per window on stdout."""
    import inspect
    import json
    torch.set_num_threads(threads)
    from vla_policy import train as T
    from vla_policy.dataset import scan_episodes
    from vla_policy.sampler import EpochBatchSampler
    out = tempfile.mkdtemp(prefix='vla_bench_run_')
    args = T.build_parser().parse_args(['--data', str(data), '--out', out, '--steps', '1000000',
                                        '--threads', str(threads), *extra])
    cfg = T.train_config_from_args(args)
    info = scan_episodes(cfg.data)
    trainer = T.Trainer(cfg, T.build_model_config(args, info), info, T.Dist(), torch.device('cpu'), None)
    sampler = EpochBatchSampler(len(trainer.train_set), cfg.batch_size, cfg.seed)
    loader = iter(trainer._loader(trainer.train_set, sampler))
    trainer.model.train()
    takes_progress = 'progress' in inspect.signature(trainer.train_step).parameters

    def step() -> None:
        batch = next(loader)
        trainer.train_step(batch, 0.5) if takes_progress else trainer.train_step(batch)

    for _ in range(3):  # first steps pay one-off costs
        step()
    print(json.dumps({'ready': True, 'threads': torch.get_num_threads(),
                      'capability': torch.backends.cpu.get_cpu_capability()}), flush=True)
    for _ in sys.stdin:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
        print(json.dumps({'samples_per_s': steps * cfg.batch_size / wall, 'steps_per_s': steps / wall,
                          'cpu_s_per_step': (time.process_time() - cpu) / steps, 'peak_rss_mb': peak_rss_mb(),
                          'load': os.getloadavg()[0]}), flush=True)


def compare(data: Path, rev: str, steps: int, rounds: int, threads: int, isa: str | None, extra: list[str]) -> None:
    import json
    import subprocess
    root = Path(__file__).resolve().parent.parent
    old_src = Path(tempfile.mkdtemp(prefix='vla_bench_rev_'))
    commit = subprocess.run(['git', 'rev-parse', '--short', rev], cwd=root, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.run(['git', 'archive', rev, 'vla_policy/vla_policy'], cwd=root, check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', str(old_src)], input=archive, check=True)
    env = {**os.environ, **ISA_ENV.get(isa or '', {})}
    sides = {f'old ({commit})': str(old_src / 'vla_policy'), 'new (working tree)': str(root / 'vla_policy')}
    procs = {}
    for name, src in sides.items():
        child_env = {**env, 'PYTHONPATH': src + os.pathsep + env.get('PYTHONPATH', '')}
        cmd = [sys.executable, __file__, '--worker', '--data', str(data), '--steps', str(steps),
               '--threads', str(threads), *(['--train-args', *extra] if extra else [])]
        procs[name] = subprocess.Popen(cmd, env=child_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
        first = json.loads(procs[name].stdout.readline())  # prepare one side at a time
        print(f'{name}: ready, {first["threads"]} threads, {first["capability"]} kernels', flush=True)
    results: dict[str, list[dict]] = {name: [] for name in procs}
    for r in range(rounds):
        for name, proc in (procs.items() if r % 2 == 0 else reversed(procs.items())):
            proc.stdin.write('run\n')
            proc.stdin.flush()
            row = json.loads(proc.stdout.readline())
            results[name].append(row)
            print(f'  round {r + 1} {name}: {row["samples_per_s"]:.1f} samples/s '
                  f'({row["cpu_s_per_step"] * 1000:.0f} ms CPU/step, load {row["load"]:.1f})', flush=True)
    for proc in procs.values():
        proc.stdin.close()
        proc.wait(timeout=60)
    median = {name: float(np.median([r['samples_per_s'] for r in rows])) for name, rows in results.items()}
    (old_name, old), (new_name, new) = median.items()
    for name, rows in results.items():
        print(f'[train compare] {name}: median {median[name]:.1f} samples/s, '
              f'{median[name] / 64:.2f} steps/s at batch 64, median CPU '
              f'{np.median([r["cpu_s_per_step"] for r in rows]) * 1000:.0f} ms/step, '
              f'peak RSS {max(r["peak_rss_mb"] for r in rows):.0f} MB')
    print(f'[train compare] new / old = {new / old:.2f}x samples/s ({rounds} alternating windows of {steps} steps, '
          f'{threads} threads, kernels {isa or "default"}, {os.cpu_count()} CPUs)')


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
    parser.add_argument('--compare', metavar='REV',
                        help='only the training step: this working tree against git revision REV, side by side')
    parser.add_argument('--rounds', type=int, default=4, help='--compare: alternating timed windows per side')
    parser.add_argument('--isa', choices=sorted(ISA_ENV), help='--compare: restrict the kernels (e.g. avx2)')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--train-args', nargs=argparse.REMAINDER, default=[],
                        help='--compare: more `vla train` options for both sides (last on the line)')
    args = parser.parse_args(argv)
    if args.worker:
        trainer_worker(args.data, args.steps, args.threads, args.train_args)
        return 0
    if args.compare:
        if args.data is None:
            parser.error('--compare needs --data (e.g. from benchmarks/make_sim_dataset.py)')
        print(f'torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start')
        compare(args.data, args.compare, args.steps, args.rounds, args.threads, args.isa, args.train_args)
        return 0
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
