"""The policy with the layout given: how far would perfect perception of where things are take it?

    python benchmarks/bench_layout_oracle.py --data DATA --out RUN [--tasks workbench] [--episodes 20]
        [-- vla train options, e.g. --steps 2500 --threads 1]
    vla compare PLAIN.json RUN/results.json     # paired with the policy trained on DATA as it is

A policy that fails a precise task fails either because it does not see where its target is or
because it cannot act on it precisely. This probe takes the first away. It copies the simulator
demonstrations in DATA (to RUN/data) with each episode's layout, the start position of every
object that moves between layouts (the simulator's ground truth at the episode's task and seed),
appended to the joint state as more inputs (``marker_x``, ``puck_y``...), trains the policy on the
copy with ``vla train`` (the options after ``--``; default ``--steps 2500``), and evaluates it as
``vla_policy.evaluate`` does (seeds 1000+, clear of the demonstrations') in a simulator whose
observations carry the same layout. The images are still there: the policy can use them for what
moves during the episode. Same results JSON as the evaluator's, in RUN/results.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench_perception_probe import target_columns

LAYOUT_FILE = 'layout_columns.json'
BLANK = 128  # the grey of --blank-images


def object_positions(env) -> dict[str, np.ndarray]:
    """{object: position (3,)} in ``env`` now."""
    return {name: np.asarray(obj['pos'], dtype=np.float64) for name, obj in env.privileged_state()['objects'].items()}


def layout_at(env, task: str, seed: int) -> dict[str, np.ndarray]:
    """{object: start position (3,)} of ``task``'s scene at ``seed``."""
    env.reset(task=task, seed=seed)
    return object_positions(env)


def layout_vector(positions: dict[str, np.ndarray], cols: list[tuple[str, int]]) -> np.ndarray:
    return np.concatenate([positions[name][:dims] for name, dims in cols]).astype(np.float32)


def column_names(cols: list[tuple[str, int]]) -> list[str]:
    return [f'{name}_{"xyz"[i]}' for name, dims in cols for i in range(dims)]


def convert(src: Path, dst: Path, blank_images: bool = False) -> list[tuple[str, int]]:
    """Copy the episodes of ``src`` to ``dst`` with the layout appended to the joint state
    (positions: the layout; velocities: zeros), and with ``blank_images`` every image grey;
    returns the (object, dims) columns."""
    import h5py

    import vla_sim
    files = sorted(src.glob('episode_*.hdf5'))
    if not files:
        raise SystemExit(f'bench_layout_oracle: no episode_*.hdf5 in {src}')
    env = vla_sim.SimEnv(image_size=32, render_images=False)
    layouts = {}
    try:
        for path in files:
            with h5py.File(path, 'r') as h5:
                task, seed = h5.attrs.get('task'), h5.attrs.get('seed')
            if task is None or seed is None:
                raise SystemExit(f'bench_layout_oracle: {path} has no task/seed attributes; the oracle needs '
                                 'episodes recorded in the simulator (make_sim_dataset.py, vla collect)')
            layouts[path] = layout_at(env, str(task), int(seed))
    finally:
        env.close()
    names = list(next(iter(layouts.values())))
    cols = target_columns({n: np.stack([lay[n] for lay in layouts.values()]) for n in names})
    if not cols:
        raise SystemExit(f'bench_layout_oracle: nothing moves between the layouts of {src}')
    dst.mkdir(parents=True, exist_ok=True)
    for path in files:
        out = dst / path.name
        tmp = out.with_suffix('.tmp')
        shutil.copyfile(path, tmp)
        extra = layout_vector(layouts[path], cols)
        with h5py.File(tmp, 'r+') as h5:
            for key, value in (('joint_positions', extra), ('joint_velocities', np.zeros_like(extra))):
                old = h5[f'observations/{key}'][()]
                del h5[f'observations/{key}']
                h5[f'observations/{key}'] = np.concatenate(
                    [old, np.broadcast_to(value, (len(old), len(value)))], axis=1).astype(old.dtype)
            h5.attrs['joint_names'] = np.array([*map(str, h5.attrs['joint_names']), *column_names(cols)], dtype=object)
            for key in [k for k in h5['observations'] if k.startswith('images')] if blank_images else []:
                shape = h5[f'observations/{key}'].shape
                del h5[f'observations/{key}']  # rewritten whole: chunk by chunk in place is 100x slower
                h5.create_dataset(f'observations/{key}', data=np.full(shape, BLANK, np.uint8),
                                  chunks=(1, *shape[1:]), compression='gzip', compression_opts=1)
        tmp.replace(out)
    (dst / LAYOUT_FILE).write_text(json.dumps({'columns': cols, 'blank_images': blank_images}) + '\n')
    return cols


def load_run(run: Path):
    """(the oracle simulator class, its columns) of a run directory this script wrote."""
    spec = json.loads((run / 'data' / LAYOUT_FILE).read_text())
    cols = [(str(name), int(dims)) for name, dims in spec['columns']]
    return oracle_env(cols, bool(spec['blank_images'])), cols


def oracle_env(cols: list[tuple[str, int]], blank_images: bool = False):
    """A SimEnv class whose observations' joint_positions end with the episode's layout (and, with
    ``blank_images``, whose images are grey)."""
    import vla_sim

    class LayoutOracleEnv(vla_sim.SimEnv):
        def __init__(self, **kwargs: Any) -> None:
            self._layout = np.zeros(sum(d for _, d in cols), np.float32)
            super().__init__(**kwargs)

        @property
        def joint_names(self) -> tuple[str, ...]:  # the simulator's (it sets them per scene), then the layout's
            return (*self._arm_joint_names, *column_names(cols))

        @joint_names.setter
        def joint_names(self, names) -> None:
            self._arm_joint_names = tuple(names)

        def reset(self, task: str = 'pick_red', seed: int | None = None) -> dict[str, Any]:
            obs = super().reset(task=task, seed=seed)
            self._layout = layout_vector(object_positions(self), cols)
            return self._with_layout(obs)

        def step(self, action):
            obs, reward, done, info = super().step(action)
            return self._with_layout(obs), reward, done, info

        def _with_layout(self, obs: dict[str, Any]) -> dict[str, Any]:
            obs = {**obs, 'joint_positions': np.concatenate([obs['joint_positions'], self._layout])}
            if blank_images:
                obs.update({k: np.full_like(v, BLANK) for k, v in obs.items() if k.startswith('image') and v is not None})
            return obs

    return LayoutOracleEnv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index('--') + 1:] if '--' in argv else []
    argv = argv[:argv.index('--')] if '--' in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, required=True, help='simulator demonstrations (episode_*.hdf5)')
    parser.add_argument('--out', type=Path, required=True, help='run directory: data/, train/, results.json')
    parser.add_argument('--tasks', default='workbench', help='tasks or suites to evaluate (default workbench)')
    parser.add_argument('--episodes', type=int, default=20, help='episodes per task, seeds 1000+ (default 20)')
    parser.add_argument('--blank-images', action='store_true',
                        help='every image grey, in the copy and in the evaluation: the policy has the state alone')
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error('--episodes must be >= 1')
    import vla_sim
    from vla_common.evaluation import format_table, write_results
    from vla_policy.evaluate import evaluate_checkpoint
    try:
        tasks = vla_sim.resolve_tasks(args.tasks)
    except ValueError as exc:
        parser.error(str(exc))
    cols = convert(args.data, args.out / 'data', args.blank_images)
    print(f'layout given as {len(column_names(cols))} more state inputs: {", ".join(column_names(cols))}', flush=True)
    if not any(a == '--steps' or a.startswith('--steps=') or a.startswith('--epochs') or a.startswith('--max-minutes')
               for a in train_args):
        train_args = ['--steps', '2500', *train_args]
    command = [sys.executable, '-m', 'vla_policy.train', '--data', str(args.out / 'data'),
               '--out', str(args.out / 'train'), *train_args]
    print('+ ' + ' '.join(command), flush=True)
    if subprocess.run(command).returncode != 0:
        print('bench_layout_oracle: training failed (its error is above)', file=sys.stderr)
        return 1
    import torch
    torch.set_num_threads(1)  # as vla_policy.evaluate's default: one episode's inference, one core
    summary = evaluate_checkpoint(args.out / 'train' / 'checkpoint', tasks, args.episodes,
                                  make_env=oracle_env(cols, args.blank_images))
    summary['layout_oracle'] = {'columns': column_names(cols), 'data': str(args.data), 'train_args': train_args,
                                'blank_images': args.blank_images}
    print(format_table(summary))
    write_results(args.out / 'results.json', summary)
    print(f'results written to {args.out / "results.json"}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
