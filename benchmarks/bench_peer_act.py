"""A peer baseline: LeRobot's ACT, trained on our HDF5 episodes for the same wall time, evaluated in
our ROS-free simulator on the same seeds, written as a results JSON that `vla compare` pairs up.

    ./run.sh bench bench_peer_act.py --data DATA_DIR --out OUT --minutes 30 --tasks workbench \\
        --episodes 20 [--action-space ee_delta]
    vla compare OURS.json OUT/results.json          # paired (same seeds): exact McNemar per task

Compare it with `vla train --data DATA_DIR --max-minutes 30 [--action-space ee_delta]` then
`python -m vla_policy.evaluate --checkpoint RUN/checkpoint --tasks workbench --episodes 20 --json OURS.json`,
run one after the other (not side by side) on the same machine.

LeRobot lives in its own venv, never the project's: ``check_lerobot_load.setup`` makes it
(/tmp/lerobot_venv or $LEROBOT_VENV: lerobot 0.4.4 --no-deps, torch 2.14.1 from this machine's
wheel store) and this script adds what ACT and our simulator need (``PEER_DEPS``, pinned).  This
driver (the project's Python) then re-runs the script with the venv's Python twice: ``--stage
train`` and ``--stage eval``, with PYTHONPATH on the repo's vla_sim, vla_common and vla_collect
source folders (pure Python + mujoco + h5py; no ROS, no vla_policy).

What ACT gets, and what is ours:
- LeRobot's own ``ACTConfig``/``ACTPolicy``, its pre/post-processor pipeline (MEAN_STD
  normalisation with statistics computed here from the episodes: per-channel for the image,
  per-dimension for state and action), its optimizer preset (AdamW, weight decay 1e-4, gradient
  clip 10) and its loss (L1 on the chunk, padded steps masked, + 10 x KL of the VAE).
- CPU size of issue 17: d_model 256, chunk 20, n_action_steps 20 (LeRobot's default: the whole
  chunk), lr 1e-4 (backbone too: it is trained from scratch), batch 32, ResNet18 **without**
  pretrained weights (``pretrained_backbone_weights=None``: nothing is downloaded; HF_HUB_OFFLINE=1
  and an empty TORCH_HOME are checked after training).  Other fields: LeRobot's defaults.
- ACT has no language input.  Several workbench tasks share one scene, so an image alone does
  not say which task to do: ``--task-conditioning onehot`` (default) appends a one-hot of the
  episode's instruction (one per task) to observation.state; ``none`` trains it image+joints only.
- Inputs: observation.image (the main camera at the recorded size, [0, 1] floats),
  observation.state (joint positions [+ task one-hot]); output: action (/actions or /actions_ee,
  as ``--action-space`` selects, mirroring ``vla train --action-space``).
- The budget is wall time from the start of the train stage, data loading included (as
  ``vla train --max-minutes`` counts it); torch threads = nproc for training, 1 for evaluation
  (as ``vla_policy.evaluate``).  Failed episodes (success=False) are skipped, as our trainer does.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ('vla_sim', 'vla_common', 'vla_collect')  # the pure-Python packages the venv imports
#: what `lerobot.policies.act` (and the processors) import beyond check_lerobot_load's venv, and our
#: simulator and episode reader; pinned inside lerobot 0.4.4's ranges (numpy < 2.3 as that venv has)
PEER_DEPS = ['draccus==0.10.0', 'einops==0.8.1', 'diffusers==0.35.2', 'huggingface-hub==0.35.3',
             'pyserial==3.5', 'deepdiff==8.6.2', 'imageio==2.38.1', 'h5py==3.16.0', 'mujoco==4.0.0',
             'numpy<2.3']
PEER_IMPORTS = ('import lerobot.policies.act.modeling_act, lerobot.policies.act.processor_act, '
                'h5py, mujoco')
IMAGE = 'observation.image'
STATE = 'observation.state'
ACTION = 'action'


# -- driver (the project's Python) ------------------------------------------------------------
def setup_venv() -> Path:
    """The lerobot venv of check_lerobot_load, with ``PEER_DEPS`` added when ACT does not import."""
    import check_lerobot_load  # same directory
    python = check_lerobot_load.setup(check_lerobot_load.VENV)
    if subprocess.run([str(python), '-c', PEER_IMPORTS], capture_output=True).returncode:
        print(f'installing ACT and simulator packages into {check_lerobot_load.VENV}: {" ".join(PEER_DEPS)}',
              file=sys.stderr)
        subprocess.run([str(python), '-m', 'pip', 'install', '-q', *PEER_DEPS], check=True)
        subprocess.run([str(python), '-c', PEER_IMPORTS], check=True)
    return python


def stage_env(out: Path) -> dict[str, str]:
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(str(REPO / d) for d in SOURCE_DIRS),
            'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl'), 'HF_HUB_OFFLINE': '1',
            'HF_LEROBOT_HOME': str(out / 'hf'), 'TORCH_HOME': str(out / 'torch_home')}


def drive(args: argparse.Namespace, argv: list[str]) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    python = setup_venv()
    env = stage_env(args.out)
    stages = [s for s in ('train', 'eval') if not (s == 'train' and args.eval_only)
              and not (s == 'eval' and args.train_only)]
    for stage in stages:
        print(f'[peer-act] {stage} with {python}', file=sys.stderr)
        rc = subprocess.run([str(python), __file__, '--stage', stage, *argv], env=env).returncode
        if rc:
            print(f'[peer-act] the {stage} stage failed (exit {rc})', file=sys.stderr)
            return rc
    if 'eval' in stages:
        print(f'compare: vla compare OURS.json {args.json or args.out / "results.json"}')
    return 0


# -- data (inside the venv) -------------------------------------------------------------------
class Demonstrations:
    """The episodes as LeRobot batches: frame t's image and state with actions t .. t+chunk-1
    (past the episode's end: its last action repeated, marked in ``action_is_pad``, as
    LeRobotDataset pads)."""

    def __init__(self, data: Path, action_space: str, conditioning: str) -> None:
        import numpy as np

        from vla_collect.episode_io import load_valid_episodes, open_episode
        paths, skipped = load_valid_episodes(data)
        self.skipped, self.failed = len(skipped), 0
        kept, lengths, instructions = [], [], []
        for path in paths:  # a first pass over the attributes: the frames are read once, into place
            with open_episode(path, action_space=action_space) as episode:
                if not episode.success:
                    self.failed += 1
                    continue
                kept.append(path)
                lengths.append(len(episode))
                instructions.append(episode.language_command)
                shape = episode.images.shape[1:]  # (H, W, 3)
                self.action_names, self.fps = episode.action_names, episode.fps
        if not kept:
            raise SystemExit(f'no successful episode in {data} ({len(skipped)} skipped, {self.failed} failed)')
        total = int(sum(lengths))
        starts = np.cumsum([0, *lengths[:-1]])
        self.tasks = sorted(set(instructions)) if conditioning == 'onehot' else []
        self.images = np.empty((total, *shape), np.uint8)  # uint8 in RAM: 49 kB a frame at 128 px
        self.actions = np.empty((total, len(self.action_names)), np.float32)
        self.states = np.zeros((total, 0), np.float32)
        for path, start, length, instruction in zip(kept, starts, lengths, instructions):
            with open_episode(path, action_space=action_space) as episode:
                rows = slice(start, start + length)
                self.images[rows] = episode.images[()]
                self.actions[rows] = episode.actions[()]
                joints = episode.joint_positions[()].astype(np.float32)
                if self.states.shape[1] == 0:
                    self.states = np.zeros((total, joints.shape[1] + len(self.tasks)), np.float32)
                self.states[rows, :joints.shape[1]] = joints
                if self.tasks:  # the task one-hot after the joint positions
                    self.states[rows, joints.shape[1] + self.tasks.index(instruction)] = 1.0
        self.episodes = len(lengths)
        # for each frame, the index one past its episode's last frame
        self.ends = np.concatenate([np.full(n, s + n) for s, n in zip(starts, lengths)])

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w, c = self.images.shape[1:]
        return (c, h, w)

    def stats(self) -> dict:
        """MEAN_STD statistics as LeRobot's dataset stats: per channel for the image ([0, 1]
        scale, shape (3, 1, 1)), per dimension for state and action; the std of a constant
        dimension (the one-hot of a single task, a fixed joint) is raised to 1e-2 so it does not
        blow up."""
        import numpy as np
        pick = np.random.default_rng(0).choice(len(self), size=min(len(self), 2000), replace=False)
        pixels = self.images[np.sort(pick)].reshape(-1, 3).astype(np.float64) / 255.0
        image = {'mean': pixels.mean(0).reshape(3, 1, 1), 'std': pixels.std(0).reshape(3, 1, 1)}
        out = {IMAGE: image}
        for key, values in ((STATE, self.states), (ACTION, self.actions)):
            out[key] = {'mean': values.mean(0), 'std': np.maximum(values.std(0), 1e-2)}
        return {k: {s: np.asarray(v, np.float32) for s, v in d.items()} for k, d in out.items()}

    def batch(self, index, chunk: int) -> dict:
        import numpy as np
        import torch
        steps = index[:, None] + np.arange(chunk)[None, :]  # (B, chunk)
        last = self.ends[index][:, None] - 1
        pad = steps > last
        steps = np.minimum(steps, last)
        image = torch.from_numpy(self.images[index]).permute(0, 3, 1, 2).float().div_(255.0)
        return {IMAGE: image, STATE: torch.from_numpy(self.states[index]),
                ACTION: torch.from_numpy(self.actions[steps]), 'action_is_pad': torch.from_numpy(pad)}


def act_config(image_shape, state_dim: int, action_dim: int, args: argparse.Namespace):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    return ACTConfig(
        input_features={IMAGE: PolicyFeature(FeatureType.VISUAL, tuple(image_shape)),
                        STATE: PolicyFeature(FeatureType.STATE, (state_dim,))},
        output_features={ACTION: PolicyFeature(FeatureType.ACTION, (action_dim,))},
        device=args.device, push_to_hub=False,
        chunk_size=args.chunk_size, n_action_steps=args.n_action_steps or args.chunk_size,
        dim_model=args.dim_model, dim_feedforward=args.dim_feedforward,
        pretrained_backbone_weights=None,  # ResNet18 from scratch: nothing is downloaded
        optimizer_lr=args.lr, optimizer_lr_backbone=args.lr)


def to_tensors(stats: dict) -> dict:
    import torch
    return {k: {s: torch.as_tensor(v) for s, v in d.items()} for k, d in stats.items()}


# -- train stage ------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    import lerobot
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.act.processor_act import make_act_pre_post_processors
    start = time.monotonic()  # after the imports, as vla train's clock starts after its own
    cpu_start = time.process_time()
    budget = args.minutes * 60.0
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(args.train_seed)
    data = Demonstrations(args.data, args.action_space, args.task_conditioning)
    stats = data.stats()
    cfg = act_config(data.image_shape, data.states.shape[1], data.actions.shape[1], args)
    policy = ACTPolicy(cfg).to(args.device)
    preprocess, _ = make_act_pre_post_processors(cfg, dataset_stats=to_tensors(stats))
    preset = cfg.get_optimizer_preset()
    optimizer = preset.build(policy.get_optim_params())
    params = sum(p.numel() for p in policy.parameters())
    data_s = time.monotonic() - start
    print(f'[peer-act] lerobot {lerobot.__version__} ACT ({params / 1e6:.1f} M parameters), torch '
          f'{torch.__version__} {torch.backends.cpu.get_cpu_capability()}, {threads} thread(s); '
          f'{data.episodes} episodes, {len(data)} frames, image {data.image_shape}, state {data.states.shape[1]} '
          f'({len(data.tasks)} task one-hot), action {data.actions.shape[1]} ({args.action_space}); '
          f'data loaded in {data_s:.1f} s; budget '
          f'{f"{args.steps} steps" if args.steps else f"{args.minutes:g} min"}', file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / 'train.jsonl').open('w')
    rng = np.random.default_rng(args.train_seed)
    order, cursor = rng.permutation(len(data)), 0
    step, samples, step_s, last_print = 0, 0, 0.0, start
    metrics: dict = {}
    policy.train()
    while True:
        now = time.monotonic()
        if args.steps is not None:
            if step >= args.steps:  # a fixed length: the same model on every machine
                break
        elif now - start + step_s > budget:  # the next step would end past the budget
            break
        if cursor + args.batch_size > len(order):  # a fresh shuffle each epoch, as LeRobot's loader
            order, cursor = rng.permutation(len(data)), 0
        index = order[cursor:cursor + args.batch_size]
        cursor += args.batch_size
        batch = preprocess(data.batch(index, cfg.chunk_size))
        loss, metrics = policy.forward(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), preset.grad_clip_norm)
        optimizer.step()
        step, samples = step + 1, samples + len(index)
        step_s = time.monotonic() - now if step_s == 0 else 0.9 * step_s + 0.1 * (time.monotonic() - now)
        metrics = {'loss': float(loss.item()), **metrics}
        if step % args.log_every == 0 or time.monotonic() - last_print > 60:
            elapsed = time.monotonic() - start
            line = {'step': step, 'samples': samples, 'elapsed_s': round(elapsed, 1), **metrics}
            log.write(json.dumps(line) + '\n')
            log.flush()
            print(f'[peer-act] step {step} samples {samples} {elapsed:.0f} s loss {metrics["loss"]:.4f} '
                  f'(l1 {metrics["l1_loss"]:.4f}, kld {metrics.get("kld_loss", 0):.4f}), '
                  f'{step / max(elapsed - data_s, 1e-9):.2f} steps/s', file=sys.stderr)
            last_print = time.monotonic()
    log.close()
    elapsed = time.monotonic() - start
    if step == 0:
        raise SystemExit(f'--minutes {args.minutes:g} ended before the first step (data: {data_s:.0f} s)')
    checkpoint = args.out / 'checkpoint'
    policy.save_pretrained(checkpoint)
    torch_home = Path(os.environ.get('TORCH_HOME', args.out / 'torch_home'))
    downloaded = [str(p) for p in torch_home.rglob('*') if p.is_file()] if torch_home.exists() else []
    summary = {
        'lerobot': lerobot.__version__, 'torch': torch.__version__,
        'cpu_capability': str(torch.backends.cpu.get_cpu_capability()), 'threads': threads,
        'data': str(args.data), 'episodes': data.episodes, 'frames': len(data),
        'skipped_files': data.skipped, 'failed_episodes_skipped': data.failed,
        'image_shape': list(data.image_shape), 'fps': data.fps, 'action_space': args.action_space,
        'action_names': list(data.action_names), 'task_conditioning': args.task_conditioning,
        'task_instructions': data.tasks, 'parameters': params, 'budget_min': args.minutes,
        'step': step, 'samples': samples, 'elapsed_s': round(elapsed, 1), 'data_s': round(data_s, 1),
        'cpu_s': round(time.process_time() - cpu_start, 1), 'batch_size': args.batch_size,
        'final_metrics': metrics, 'downloads': downloaded,
        'act_config': {k: getattr(cfg, k) for k in (
            'chunk_size', 'n_action_steps', 'dim_model', 'n_heads', 'dim_feedforward', 'n_encoder_layers',
            'n_decoder_layers', 'use_vae', 'latent_dim', 'kl_weight', 'dropout', 'vision_backbone',
            'pretrained_backbone_weights', 'optimizer_lr', 'optimizer_lr_backbone', 'optimizer_weight_decay')},
        'stats': {k: {s: v.tolist() for s, v in d.items()} for k, d in stats.items()},
    }
    (checkpoint / 'peer_act.json').write_text(json.dumps(summary, indent=1))
    print(f'[peer-act] trained {step} steps, {samples} samples in {elapsed:.0f} s '
          f'({data_s:.0f} s data); final loss {metrics["loss"]:.4f}; checkpoint {checkpoint}; '
          f'downloads: {downloaded or "none"}', file=sys.stderr)
    return 0


# -- eval stage -------------------------------------------------------------------------------
def evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.act.processor_act import make_act_pre_post_processors
    from vla_common.evaluation import (Episode, format_table, latency_summary, machine_info,
                                       run_episodes, summarize, write_results)
    from vla_sim import SimEnv, resolve_tasks
    checkpoint = args.out / 'checkpoint'
    meta = json.loads((checkpoint / 'peer_act.json').read_text())
    tasks = resolve_tasks(args.tasks)
    torch.set_num_threads(max(1, args.eval_threads))
    policy = ACTPolicy.from_pretrained(checkpoint)
    policy.config.device = args.device  # trained on a GPU, evaluated on the CPU (or the reverse)
    policy.to(args.device)
    policy.eval()
    stats = {k: {s: np.asarray(v, np.float32) for s, v in d.items()} for k, d in meta['stats'].items()}
    preprocess, postprocess = make_act_pre_post_processors(policy.config, dataset_stats=to_tensors(stats))
    _, height, width = meta['image_shape']
    env = SimEnv(image_size=max(height, width), cameras=('front',), action_mode=meta['action_space'])
    if list(env.action_names) != meta['action_names']:
        raise SystemExit(f'the simulator takes {list(env.action_names)}, ACT was trained on {meta["action_names"]}')
    instructions = meta['task_instructions']
    latencies: list[float] = []

    def observation(obs: dict) -> dict:
        state = [obs['joint_positions'].astype(np.float32)]
        if instructions:
            if obs['instruction'] not in instructions:
                raise SystemExit(f'task {env.task.name!r} ({obs["instruction"]!r}) was not in the training '
                                 f'data; trained on {instructions}')
            onehot = np.zeros(len(instructions), np.float32)
            onehot[instructions.index(obs['instruction'])] = 1.0
            state.append(onehot)
        image = torch.from_numpy(np.ascontiguousarray(obs['image'])).permute(2, 0, 1).float().div_(255.0)
        return {IMAGE: image, STATE: torch.from_numpy(np.concatenate(state))}

    def run_one(task: str, seed: int) -> Episode:
        start_wall = time.monotonic()
        obs = env.reset(task=task, seed=seed)
        policy.reset()
        reward, info, length, done = 0.0, {'success': False}, 0, False
        while not done:
            tick = time.perf_counter()
            action = postprocess(policy.select_action(preprocess(observation(obs))))
            latencies.append((time.perf_counter() - tick) * 1000.0)
            obs, reward, done, info = env.step(action[0].cpu().numpy().astype(np.float64))
            length += 1
        return Episode(task, seed, bool(info['success']), float(reward), length,
                       sim_time=round(env.sim_time, 6), wall_time=time.monotonic() - start_wall,
                       timed_out=False, estops=None)

    def progressed(episode: Episode) -> None:
        print(f'[peer-act] {episode.task} seed {episode.seed}: {"success" if episode.success else "fail"} '
              f'({episode.length} ticks, {episode.wall_time:.1f} s)', file=sys.stderr)

    try:
        with torch.inference_mode():
            results = run_episodes(run_one, tasks, args.episodes, args.seed, on_episode=progressed)
    finally:
        env.close()
    conditioning = ('one-hot of the instruction appended to observation.state (ACT has no language input)'
                    if instructions else 'none: image and joint positions only (ACT has no language input)')
    summary = summarize(
        results, policy=f'lerobot-act:{checkpoint}', runner='in-process', episodes_per_task=args.episodes,
        seed=args.seed, latency_ms=latency_summary(latencies), machine=machine_info(),
        checkpoint_metadata={'step': meta['step'], 'elapsed_s': meta['elapsed_s'], 'cpu_s': meta['cpu_s'],
                             'metrics': meta['final_metrics']},
        inference={'temporal_ensemble': False, 'n_action_steps': meta['act_config']['n_action_steps'],
                   'ensemble_decay': None, 'traced': False},
        peer={'implementation': f'lerobot {meta["lerobot"]} ACTPolicy (torch {meta["torch"]})',
              'task_conditioning': conditioning,
              **{k: meta[k] for k in ('data', 'episodes', 'frames', 'action_space', 'image_shape', 'budget_min',
                                      'step', 'samples', 'elapsed_s', 'data_s', 'threads', 'cpu_capability',
                                      'batch_size', 'parameters', 'act_config', 'downloads')}})
    print(format_table(summary))
    print(f'ACT: {meta["step"]} steps, {meta["samples"]} samples in {meta["elapsed_s"]:.0f} s '
          f'({meta["budget_min"]:g} min budget, {meta["threads"]} thread(s), {meta["cpu_capability"]}); '
          f'task conditioning: {conditioning}')
    path = write_results(args.json or args.out / 'results.json', summary)
    print(f'results written to {path}', file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', type=Path, required=True, help='directory of episode_*.hdf5 (as for vla train)')
    p.add_argument('--out', type=Path, required=True, help='run directory: checkpoint/, train.jsonl, results.json')
    p.add_argument('--minutes', '--max-minutes', dest='minutes', type=float, default=30.0,
                   help='wall-clock training budget, data loading included (default 30)')
    p.add_argument('--steps', type=int, help='train this many steps instead of for --minutes (a fixed '
                   'length, the same on every machine; as vla train --steps)')
    p.add_argument('--tasks', default='workbench', help='tasks to evaluate: task or suite names, or "all"')
    p.add_argument('--episodes', type=int, default=20, help='evaluation episodes per task (default 20)')
    p.add_argument('--seed', type=int, default=1000,
                   help='first evaluation seed (default 1000, '
                   'as vla_policy.evaluate)')
    p.add_argument('--json', type=Path, help='results JSON (default OUT/results.json)')
    p.add_argument('--action-space', choices=('joint', 'ee_delta'), default='joint',
                   help='learn /actions (joint targets) or /actions_ee (end-effector deltas), as vla train')
    p.add_argument('--task-conditioning', choices=('onehot', 'none'), default='onehot',
                   help='append a one-hot of the instruction to observation.state (default), or nothing')
    p.add_argument('--chunk-size', type=int, default=20, help='actions per predicted chunk (default 20)')
    p.add_argument('--n-action-steps', type=int, help='actions served per chunk (default: the chunk size)')
    p.add_argument('--dim-model', type=int, default=256, help='transformer width (default 256)')
    p.add_argument('--dim-feedforward', type=int, default=3200,
                   help="transformer feed-forward width (default 3200, LeRobot's ACTConfig default)")
    p.add_argument('--lr', type=float, default=1e-4, help='learning rate, backbone included (default 1e-4)')
    p.add_argument('--batch-size', type=int, default=32, help='batch size (default 32)')
    p.add_argument('--threads', type=int, default=0, help='torch threads for training (0: nproc)')
    p.add_argument('--device', default='cpu',
                   help='torch device of both stages: cpu (default; the comparison of issue 17) or cuda')
    p.add_argument('--eval-threads', type=int, default=1, help='torch threads for evaluation (default 1)')
    p.add_argument('--train-seed', dest='train_seed', type=int, default=0, help='training seed (default 0)')
    p.add_argument('--log-every', type=int, default=50, help='log every N steps (and at least once a minute)')
    p.add_argument('--train-only', action='store_true', help='train, do not evaluate')
    p.add_argument('--eval-only', action='store_true', help='evaluate OUT/checkpoint, do not train')
    p.add_argument('--stage', choices=('train', 'eval'), help=argparse.SUPPRESS)  # inside the venv
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.steps is not None and args.steps < 1:
        print(f'bench_peer_act: --steps must be >= 1, got {args.steps}', file=sys.stderr)
        return 2
    if args.episodes < 1 or args.minutes <= 0:
        print(f'bench_peer_act: --episodes must be >= 1 and --minutes > 0, got {args.episodes}, {args.minutes}',
              file=sys.stderr)
        return 2
    if args.stage == 'train':
        return train(args)
    if args.stage == 'eval':
        return evaluate(args)
    return drive(args, argv)


if __name__ == '__main__':
    sys.exit(main())
