"""Record scripted-expert demonstrations in the ROS-free simulator as HDF5 episodes.

    python benchmarks/make_sim_dataset.py --out runs/bench/data --episodes 50 --tasks all

Seeds 0..N-1 per task (evaluation uses 1000+). With ``--exec-noise`` the executed arm targets
get Gaussian noise while the recorded action stays the expert's clean command (DART-style state
diversity). Only successful demonstrations are kept; a failed one is retried with the next
unused seed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_collect.episode_io import EpisodeWriter
from vla_sim import ScriptedExpert, SimEnv, resolve_tasks
from vla_sim.ee_control import MAX_ROTATION, MAX_TRANSLATION

EVAL_SEED = 1000  # the first seed of `vla_policy.evaluate` (and `vla demo`'s evaluation): never a demonstration's


def record(env: SimEnv, expert: ScriptedExpert, task: str, seed: int, path: Path,
           exec_noise: float, tail: int = 15, ee_noise: float = 0.0) -> bool:
    rng = np.random.default_rng(seed + 7919)
    obs = env.reset(task=task, seed=seed)
    expert.reset()
    extra = list(env.cameras[1:])
    ee = env.action_mode == 'ee_delta'
    writer = EpisodeWriter(path, joint_names=env.joint_names, action_names=env.joint_names,
                           ee_action_names=env.action_names if ee else None,
                           image_shape=obs['image'].shape, fps=1.0 / env.dt,
                           language_command=obs['instruction'], robot='vla_sim', cameras=extra,
                           camera_shapes={c: obs[f'image_{c}'].shape for c in extra})
    with writer:
        success, step, end = False, 0, None
        while end is None or step < end:
            action = expert.act(obs)  # joint targets
            executed = action.copy()
            if exec_noise > 0 and not (ee and ee_noise > 0):
                executed[:6] += rng.normal(0.0, exec_noise, size=6)
            action_ee = None
            if ee:  # the same command as an end-effector delta, recorded beside the joint targets
                action_ee = env.ee_delta_for(action)
                if ee_noise > 0:  # noise in the action's own space, a fraction of its limit
                    executed = action_ee + np.concatenate([
                        rng.normal(0.0, ee_noise * MAX_TRANSLATION, size=3),
                        rng.normal(0.0, ee_noise * MAX_ROTATION, size=3), [0.0]])
                else:
                    executed = env.ee_delta_for(executed)
            writer.append(obs['image'], obs['joint_positions'], obs['joint_velocities'], action,
                          timestamp=step * env.dt, extra_images={c: obs[f'image_{c}'] for c in extra},
                          action_ee=action_ee)
            obs, _, done, info = env.step(executed)
            step += 1
            if done and end is None:  # record `tail` more steps: the release after a placement
                success = bool(info['success'])
                end = step + tail if success else step
        if not success:
            writer.abort()
            return False
        writer.close(success=True, attrs={'task': task, 'seed': seed})
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, required=True, help='directory for episode_*.hdf5')
    parser.add_argument('--episodes', type=int, default=50, help='successful demonstrations per task')
    parser.add_argument('--tasks', default='all',
                        help='comma-separated task or suite names (tabletop, workbench), or "all" (the cube tasks)')
    parser.add_argument('--image-size', type=int, default=224, help='recorded image size (pixels)')
    parser.add_argument('--exec-noise', type=float, default=0.01,
                        help='std (rad) of noise on executed arm targets; the recorded action stays clean')
    parser.add_argument('--ee-noise', type=float, default=0.0,
                        help='with --action-mode ee_delta: std of noise on the executed end-effector delta '
                             'as a fraction of its per-tick limit (1 cm, 0.05 rad), instead of --exec-noise '
                             '(joint noise of 0.01 rad moves the tool about one whole delta, so the labels '
                             'become mostly "undo the last noise")')
    parser.add_argument('--tail', type=float, default=0.5,
                        help='seconds recorded after success, so a demonstration shows the whole motion '
                             '(the release after a placement), not only the moment success is detected')
    parser.add_argument('--action-mode', choices=('joint', 'ee_delta'), default='joint',
                        help='the arm takes joint targets (default) or end-effector deltas; ee_delta records '
                             'the deltas as /actions_ee beside the joint targets (/actions), as `vla collect '
                             '--action-mode ee_delta` does: train on them with `vla train --action-space ee_delta`')
    parser.add_argument('--cameras', default='front,wrist',
                        help='comma-separated sim cameras; the first is the main image, the others are '
                             'stored as /observations/images_<camera> (default front,wrist; a scene records '
                             'those of them it has: the workbench only front)')
    parser.add_argument('--distinct-layouts', action='store_true',
                        help='each task continues from the seeds the tasks before it used, so no two '
                             'demonstrations share a layout (a seed is one layout of the whole scene, the same '
                             'for every task of it): 5 workbench tasks x 50 give 250 layouts instead of 50')
    args = parser.parse_args(argv)
    try:
        tasks = resolve_tasks(args.tasks)
    except ValueError as exc:
        parser.error(str(exc))
    too_many = f'demonstration seeds would reach the evaluation seeds ({EVAL_SEED}+): fewer --episodes or tasks'
    if args.episodes * (len(tasks) if args.distinct_layouts else 1) > EVAL_SEED:
        parser.error(too_many)
    args.out.mkdir(parents=True, exist_ok=True)
    env = SimEnv(image_size=args.image_size, cameras=tuple(args.cameras.split(',')), action_mode=args.action_mode)
    expert = ScriptedExpert(env)
    index, failures, start = 0, 0, time.monotonic()
    bar = tqdm(total=len(tasks) * args.episodes, desc='demonstrations', unit='ep')
    seed = 0
    for task in tasks:
        seed, kept = (seed if args.distinct_layouts else 0), 0
        while kept < args.episodes:
            if seed >= EVAL_SEED:  # failed expert runs used up the margin
                parser.error(too_many)
            path = args.out / f'episode_{index:06d}.hdf5'
            if path.exists():  # resumable: keep what is there
                index, kept, seed = index + 1, kept + 1, seed + 1
                bar.update(1)
                continue
            if record(env, expert, task, seed, path, args.exec_noise, int(round(args.tail / env.dt)),
                      ee_noise=args.ee_noise):
                index, kept = index + 1, kept + 1
                bar.update(1)
            else:
                failures += 1
            seed += 1
    bar.close()
    elapsed = time.monotonic() - start
    print(f'{index} episodes in {args.out} ({failures} failed expert runs discarded), {elapsed:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
