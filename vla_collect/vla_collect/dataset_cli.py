"""``vla dataset`` / ``ros2 run vla_collect dataset``: tools for a directory of HDF5 episodes.

    vla dataset info DIR                 episodes, tasks, lengths, success rate, size
    vla dataset validate DIR|FILE...     schema, NaN, timestamps, dimensions; exit 1 naming each bad file
    vla dataset stats DIR [--json F]     normalisation statistics of states and actions
    vla dataset view EPISODE --out F     the episode as a GIF (or MP4) with its action traces
    vla dataset split DIR [--val 0.1]    train/validation split by episode -> DIR/split.json
    vla dataset recover DIR|FILE...      salvage interrupted recordings (*.hdf5.tmp)
    vla dataset import --format rosbag|lerobot|aloha SRC OUT   recordings of other tools -> episodes
    vla dataset export --format lerobot SRC OUT        episodes -> a LeRobotDataset v3.0 directory
"""
from __future__ import annotations

import argparse
import random
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from vla_collect import dataset_import
from vla_collect.episode_reader import load_valid_episodes, open_episode
from vla_collect.episode_recovery import recover_episode
from vla_collect.episode_schema import (EpisodeFormatError, list_episodes, list_interrupted,
                                        validate_episode)
from vla_common.files import atomic_path, atomic_write_json, write_gif


class DatasetError(RuntimeError):
    """A problem the user can fix; the message says what to do."""


def _episodes_in(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise DatasetError(f'{directory} is not a directory of episodes')
    return list_episodes(directory)


def _valid(directory: Path) -> list[Path]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        valid, skipped = load_valid_episodes(directory)
    for path, reason in skipped:
        print(f'warning: skipping {path}: {reason}', file=sys.stderr)
    del caught
    if not valid:
        raise DatasetError(f'no valid episode in {directory} (expected episode_*.hdf5 files; '
                           'record some with `vla collect` or the teleop launch)')
    return valid


# -- info ---------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    paths = _episodes_in(directory)
    interrupted = list_interrupted(directory)
    per_command: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    broken, size, seconds = [], 0, 0.0
    shapes = set()
    for path in paths:
        size += path.stat().st_size
        try:
            with open_episode(path) as ep:
                per_command[ep.language_command].append((len(ep), ep.success))
                seconds += len(ep) / ep.fps
                shapes.add((tuple(ep.images.shape[1:]), len(ep.joint_names), len(ep.action_names)))
        except EpisodeFormatError as exc:
            broken.append((path, str(exc)))
    lengths = [n for rows in per_command.values() for n, _ in rows]
    successes = sum(s for rows in per_command.values() for _, s in rows)
    print(f'{directory}: {len(lengths)} episodes, {sum(lengths)} steps ({seconds / 60:.1f} min), '
          f'{size / 2**20:.1f} MB')
    if lengths:
        print(f'success: {successes}/{len(lengths)} ({successes / len(lengths):.0%}); length '
              f'min {min(lengths)} / mean {np.mean(lengths):.1f} / max {max(lengths)} steps')
        for image, n_joints, n_actions in sorted(shapes):
            print(f'images {image[1]}x{image[0]}, {n_joints} joints, {n_actions} actions')
        print(f'{"language command":<40}{"episodes":>9}{"success":>9}{"mean len":>10}')
        for command, rows in sorted(per_command.items()):
            ok = sum(s for _, s in rows)
            print(f'{command[:39]:<40}{len(rows):>9}{ok / len(rows):>9.0%}'
                  f'{np.mean([n for n, _ in rows]):>10.1f}')
    for path, reason in broken:
        print(f'unreadable: {reason}')
    for path in interrupted:
        print(f'interrupted recording: {path} (salvage with `vla dataset recover {path}`)')
    return 0


# -- validate -------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for target in map(Path, args.paths):
        if target.is_dir():
            files += list_episodes(target) + list_interrupted(target)
        else:
            files.append(target)
    if not files:
        raise DatasetError(f'no episode files in {" ".join(args.paths)}')
    bad = 0
    for path in files:
        problems = validate_episode(path, check_images='all')
        if problems:
            bad += 1
            for problem in problems:
                print(f'{path}: {problem}')
        elif args.verbose:
            print(f'{path}: ok')
    print(f'{len(files) - bad}/{len(files)} episode files valid', file=sys.stderr)
    return 1 if bad else 0


# -- stats ----------------------------------------------------------------------------------------
def dataset_stats(paths: list[Path]) -> dict:
    """Mean, std, min, max (per dimension) of joint positions, velocities and actions."""
    sums: dict[str, list[np.ndarray]] = defaultdict(list)
    names: dict[str, list[str]] = {}
    steps = 0
    for path in paths:
        with open_episode(path) as ep:
            for key, ds, labels in (('joint_positions', ep.joint_positions, ep.joint_names),
                                    ('joint_velocities', ep.joint_velocities, ep.joint_names),
                                    ('actions', ep.actions, ep.action_names)):
                if key in names and names[key] != labels:
                    raise DatasetError(f'{path} names {labels} for {key}, other episodes '
                                       f'{names[key]}; keep one robot per dataset')
                names[key] = labels
                sums[key].append(np.asarray(ds[()], dtype=np.float64))
            steps += len(ep)
    out: dict = {'episodes': len(paths), 'steps': steps}
    for key, chunks in sums.items():
        data = np.concatenate(chunks)
        out[key] = {'names': names[key], 'mean': data.mean(0).tolist(), 'std': data.std(0).tolist(),
                    'min': data.min(0).tolist(), 'max': data.max(0).tolist()}
    return out


def cmd_stats(args: argparse.Namespace) -> int:
    stats = dataset_stats(_valid(Path(args.directory)))
    print(f'{stats["episodes"]} episodes, {stats["steps"]} steps')
    for key in ('joint_positions', 'joint_velocities', 'actions'):
        s = stats[key]
        print(f'{key}:')
        for i, name in enumerate(s['names']):
            print(f'  {name:<12} mean {s["mean"][i]:+9.4f}  std {s["std"][i]:8.4f}  '
                  f'min {s["min"][i]:+9.4f}  max {s["max"][i]:+9.4f}')
    if args.json:
        atomic_write_json(args.json, stats)
        print(f'written to {args.json}', file=sys.stderr)
    return 0


# -- view -----------------------------------------------------------------------------------------
def _trace_panel(actions: np.ndarray, names: list[str], width: int, height: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The action traces as an RGB image, and the x pixel range of the time axis."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    dpi = 100
    fig, ax = plt.subplots(figsize=(width / dpi, height / dpi), dpi=dpi)
    steps = np.arange(len(actions))
    span = np.ptp(actions, axis=0)
    for i, name in enumerate(names):  # each trace scaled to its own range, so all are visible
        scaled = (actions[:, i] - actions[:, i].min()) / (span[i] if span[i] > 1e-9 else 1.0)
        ax.plot(steps, scaled + 1.1 * i, lw=1, label=name)
    ax.set_yticks([1.1 * i + 0.5 for i in range(len(names))], names, fontsize=6)
    ax.set_xlim(0, max(1, len(actions) - 1))
    ax.set_xlabel('step', fontsize=7)
    ax.tick_params(axis='x', labelsize=6)
    ax.set_title('actions (each scaled to its range)', fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.canvas.draw()
    panel = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    x0, x1 = ax.transData.transform([(0, 0), (max(1, len(actions) - 1), 0)])[:, 0]
    plt.close(fig)
    return panel, (float(x0), float(x1))


def render_episode(path: Path, out: Path, fps: float | None = None, scale: int = 2,
                   every: int = 1) -> Path:
    """Write the episode's frames (every camera side by side) above its action traces (with a
    moving cursor) to GIF/MP4."""
    suffix = out.suffix.lower()
    if suffix not in ('.gif', '.mp4'):
        raise DatasetError(f'--out must end in .gif or .mp4, got {out.name}')
    with open_episode(path) as ep:
        actions = np.asarray(ep.actions[()], dtype=np.float64)
        h, w = ep.images.shape[1:3]
        cameras = [ep.camera_images(c) for c in ep.cameras]
        width = w * scale * (1 + len(cameras))
        panel, (x0, x1) = _trace_panel(actions, ep.action_names, width, max(160, 24 * len(ep.action_names)))
        frames = []
        from tqdm import tqdm
        for i in tqdm(range(0, len(ep), every), desc=f'render {path.name}', unit='frame',
                      file=sys.stderr, leave=False):
            views = [ep.images[i]] + [_fit(cam[i], h, w) for cam in cameras]
            image = np.repeat(np.repeat(np.hstack(views), scale, axis=0), scale, axis=1)
            trace = panel.copy()
            x = int(round(x0 + (x1 - x0) * i / max(1, len(ep) - 1)))
            trace[:, max(0, x - 1):x + 1] = (220, 30, 30)
            frames.append(np.vstack([image, trace]))
        rate = (fps or ep.fps) / every
    if suffix == '.gif':
        return write_gif(frames, out, fps=rate)
    # H.264 through PyAV (the LeRobot export's writer; no ffmpeg binary needed), a keyframe a second
    from vla_collect.lerobot_meta import LeRobotFormatError
    from vla_collect.lerobot_video import VideoFileWriter, VideoSettings
    with atomic_path(out) as tmp:
        try:
            writer = VideoFileWriter(Path(tmp), rate, frames[0].shape,
                                     VideoSettings(codec='h264', gop=max(1, round(rate))))
        except LeRobotFormatError as exc:  # a PyAV build without an H.264 encoder
            raise DatasetError(f'cannot write {out.name}: {exc}; write a .gif instead') from None
        try:
            for image in frames:
                writer.write(image)
        finally:
            writer.close()
    return out


def _fit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """An extra camera's frame at the main camera's size, for side-by-side viewing."""
    if image.shape[:2] == (h, w):
        return image
    import cv2
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_AREA)


def cmd_view(args: argparse.Namespace) -> int:
    path = Path(args.episode)
    out = Path(args.out) if args.out else path.with_suffix('.gif')
    render_episode(path, out, fps=args.fps, scale=args.scale, every=args.every)
    print(f'written {out}')
    return 0


# -- split ----------------------------------------------------------------------------------------
def split_episodes(paths: list[Path], val_fraction: float, seed: int) -> dict:
    """Train/validation split by episode, stratified by language command (every command with
    two or more episodes gets at least one validation episode)."""
    if not 0 < val_fraction < 1:
        raise DatasetError(f'--val must be between 0 and 1, got {val_fraction}')
    groups: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        with open_episode(path) as ep:
            groups[ep.language_command].append(path.name)
    rng = random.Random(seed)
    train, val = [], []
    for command in sorted(groups):
        names = sorted(groups[command])
        rng.shuffle(names)
        k = int(round(len(names) * val_fraction))
        if len(names) >= 2:
            k = min(max(k, 1), len(names) - 1)
        else:
            k = 0
        val += names[:k]
        train += names[k:]
    return {'seed': seed, 'val_fraction': val_fraction, 'train': sorted(train), 'val': sorted(val)}


def cmd_split(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    split = split_episodes(_valid(directory), args.val, args.seed)
    out = Path(args.out) if args.out else directory / 'split.json'
    atomic_write_json(out, split)
    print(f'{len(split["train"])} train / {len(split["val"])} validation episodes -> {out}')
    return 0


# -- recover --------------------------------------------------------------------------------------
def cmd_recover(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for target in map(Path, args.paths):
        files += list_interrupted(target) if target.is_dir() else [target]
    if not files:
        print('nothing to recover (no *.hdf5.tmp files)')
        return 0
    failed = 0
    for path in files:
        try:
            final = recover_episode(path)
        except (EpisodeFormatError, FileExistsError, ValueError, OSError) as exc:
            failed += 1
            print(f'{path}: cannot recover: {exc}')
            continue
        with open_episode(final) as ep:
            print(f'{path} -> {final} ({len(ep)} steps, success=False)')
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='vla dataset', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    p = sub.add_parser('info', help='episodes, tasks, lengths, success rate and size')
    p.add_argument('directory')
    p.set_defaults(func=cmd_info)
    p = sub.add_parser('validate', help='check every file; exit 1 naming each bad one')
    p.add_argument('paths', nargs='+', help='episode directories or files')
    p.add_argument('-v', '--verbose', action='store_true', help='also list the valid files')
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser('stats', help='normalisation statistics of states and actions')
    p.add_argument('directory')
    p.add_argument('--json', help='also write the statistics to this JSON file')
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser('view', help='render an episode with its action traces to GIF or MP4')
    p.add_argument('episode')
    p.add_argument('--out', help='output .gif or .mp4 (default: the episode name with .gif)')
    p.add_argument('--fps', type=float, help='playback rate (default: the recording rate)')
    p.add_argument('--scale', type=int, default=2, help='image magnification (default 2)')
    p.add_argument('--every', type=int, default=1, help='keep every n-th frame (default 1)')
    p.set_defaults(func=cmd_view)
    p = sub.add_parser('split', help='train/validation split by episode')
    p.add_argument('directory')
    p.add_argument('--val', type=float, default=0.1, help='validation fraction (default 0.1)')
    p.add_argument('--seed', type=int, default=0, help='shuffle seed (default 0)')
    p.add_argument('--out', help='split JSON (default: DIR/split.json)')
    p.set_defaults(func=cmd_split)
    p = sub.add_parser('recover', help='salvage interrupted recordings (*.hdf5.tmp)')
    p.add_argument('paths', nargs='+', help='directories or .tmp files')
    p.set_defaults(func=cmd_recover)
    dataset_import.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except (DatasetError, EpisodeFormatError, FileNotFoundError) as exc:
        print(f'vla dataset {args.command}: error: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
