"""Dataset conversion throughput, peak memory and size on disk (issue 13's benchmarks).

    ./run.sh bench bench_dataset_convert.py [--minutes 5 10] [--size 224] [--episode-seconds 20]

A synthetic two-camera (front + wrist) 30 Hz recording of the given lengths, written with the real
EpisodeWriter: SIMPLE MOVING IMAGES (a smooth gradient background with two coloured blocks
sliding across it and a fixed low-contrast texture; not random noise, which no codec compresses)
and smooth joint trajectories, cut into episodes of --episode-seconds.  --unique episodes (8) are
generated once (HDF5 and MCAP); a recording of a given length holds them cyclically (hard links),
which keeps the set-up short on a shared machine and changes nothing for the converters, which
see separate episode files.  For each length:

- export to LeRobot v3.0 (H.264, the default settings) and import back;
- the same demonstrations written as one MCAP bag per episode with rosbags (raw sensor_msgs/Image
  for both cameras, JointState, JointTrajectory commands, the instruction), imported with
  `vla dataset import --format rosbag`'s code;

each conversion in a fresh child process whose own peak RSS (getrusage maxrss) is reported, so
memory independent of the recording's length shows as equal figures for both lengths.  Frames/s
counts time steps (each with two camera frames); real time is 30 steps/s.  Also: size on disk of
the same demonstrations as HDF5, MCAP and LeRobot v3.0, and the PSNR of the video round trip.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for package in ('vla_collect', 'vla_sim', 'vla_common'):
    sys.path.insert(0, str(ROOT / package))

FPS = 30.0
JOINTS = [f'joint{i}' for i in range(1, 7)] + ['gripper']


def _frames(size: int, steps: int, camera: int, seed: int):
    """Simple moving images: a smooth gradient, two blocks sliding, a fixed faint texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([120 + 80 * x, 100 + 60 * y + 30 * camera, 140 - 50 * x * y], -1)
    base += rng.normal(0, 3, base.shape)  # texture, fixed per camera
    base = np.clip(base, 0, 255).astype(np.uint8)
    block = max(4, size // 8)
    for t in range(steps):
        img = base.copy()
        for k, colour in enumerate(((220, 30, 30), (30, 200, 60))):
            phase = t / (40.0 + 17 * k) + k + camera
            cy = int((0.5 + 0.35 * np.sin(phase)) * (size - block))
            cx = int((0.5 + 0.35 * np.cos(1.3 * phase)) * (size - block))
            img[cy:cy + block, cx:cx + block] = colour
        yield img


def write_episodes(directory: Path, episodes: int, steps: int, size: int = 224) -> Path:
    """Episodes of simple moving images and smooth trajectories, written with EpisodeWriter."""
    from vla_collect.episode_io import EpisodeWriter
    directory.mkdir(parents=True, exist_ok=True)
    for e in range(episodes):
        t = np.arange(steps) / FPS
        q = np.stack([0.5 * np.sin(0.7 * t + j + e) for j in range(len(JOINTS))], 1)
        q[:, -1] = 0.04 + 0.03 * np.sin(t)
        dq = np.gradient(q, axis=0) * FPS
        actions = np.roll(q, -3, axis=0)
        with EpisodeWriter(directory / f'episode_{e:06d}.hdf5', joint_names=JOINTS,
                           action_names=JOINTS, image_shape=(size, size, 3), fps=FPS,
                           cameras=['wrist'], language_command=['pick up the red cube',
                                                                 'open the drawer'][e % 2],
                           flush_every=300) as writer:
            for i, (front, wrist) in enumerate(zip(_frames(size, steps, 0, e), _frames(size, steps, 1, e))):
                writer.append(front, q[i], dq[i], actions[i], 1000.0 * (e + 1) + i / FPS,
                              extra_images={'wrist': wrist})
            writer.close(success=True)
    return directory


MAPPING = {'image': '/camera/image_raw', 'cameras': {'wrist': '/camera/wrist/image_raw'},
           'joint_states': '/joint_states', 'action': '/vla/command', 'instruction': '/voice_command',
           'fps': FPS}


def write_bags(src: Path, bags: Path) -> Path:
    """The same demonstrations as one MCAP bag per episode (what a ROS recorder would hold)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from vla_collect.episode_io import list_episodes, open_episode
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types

    def header(t):
        sec = int(t)
        return T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](
            sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id='')

    bags.mkdir(parents=True, exist_ok=True)
    for path in list_episodes(src):
        with open_episode(path) as ep, Writer(bags / path.stem, version=9,
                                              storage_plugin=StoragePlugin.MCAP) as writer:
            types = {'/camera/image_raw': 'sensor_msgs/msg/Image',
                     '/camera/wrist/image_raw': 'sensor_msgs/msg/Image',
                     '/joint_states': 'sensor_msgs/msg/JointState',
                     '/vla/command': 'trajectory_msgs/msg/JointTrajectory',
                     '/voice_command': 'std_msgs/msg/String'}
            conns = {topic: writer.add_connection(topic, msgtype, typestore=ts) for topic, msgtype in types.items()}

            def put(topic, msg, t):
                writer.write(conns[topic], int(round(t * 1e9)), ts.serialize_cdr(msg, types[topic]))

            stamps = ep.timestamps[()]
            put('/voice_command', T['std_msgs/msg/String'](data=ep.language_command), stamps[0] - 0.5)
            q, dq, act = ep.joint_positions[()], ep.joint_velocities[()], ep.actions[()]
            for start in range(0, len(ep), 64):
                front, wrist = ep.images[start:start + 64], ep.camera_images('wrist')[start:start + 64]
                for k in range(len(front)):
                    i = start + k
                    t = float(stamps[i])
                    for topic, rgb in (('/camera/image_raw', front[k]), ('/camera/wrist/image_raw', wrist[k])):
                        put(topic, T['sensor_msgs/msg/Image'](
                            header=header(t), height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                            is_bigendian=0, step=rgb.shape[1] * 3, data=rgb.reshape(-1)), t)
                    put('/joint_states', T['sensor_msgs/msg/JointState'](
                        header=header(t), name=list(ep.joint_names), position=q[i].astype(np.float64),
                        velocity=dq[i].astype(np.float64), effort=np.zeros(0)), t)
                    point = T['trajectory_msgs/msg/JointTrajectoryPoint'](
                        positions=act[i].astype(np.float64), velocities=np.zeros(0),
                        accelerations=np.zeros(0), effort=np.zeros(0),
                        time_from_start=T['builtin_interfaces/msg/Duration'](sec=0, nanosec=33_333_333))
                    put('/vla/command', T['trajectory_msgs/msg/JointTrajectory'](
                        header=header(t + 0.005), joint_names=list(ep.action_names), points=[point]), t + 0.005)
    return bags


# -- the measured conversions, each run in a child process ----------------------------------------
def _child(job: str, src: str, dst: str) -> None:
    import resource
    start = time.perf_counter()
    if job == 'export':
        from vla_collect.lerobot_format import export_lerobot
        report = export_lerobot(Path(src), Path(dst), progress=False)
        frames = report['frames']
    elif job == 'import':
        from vla_collect.lerobot_format import import_lerobot
        report = import_lerobot(Path(src), Path(dst), progress=False)
        assert not report['failed'], report['failed'][:1]
        frames = sum(e['steps'] for e in report['episodes'])
    elif job == 'rosbag':
        from vla_collect.bag_import import BagMapping, find_bags, import_bags
        report = import_bags(find_bags(Path(src)), Path(dst), BagMapping.from_dict(MAPPING),
                             progress=False).as_dict()
        frames = sum(e['steps'] for e in report['episodes'])
    else:
        raise SystemExit(f'unknown job {job}')
    seconds = time.perf_counter() - start
    # Linux keeps ru_maxrss across fork+exec (the child would report the parent's size when it
    # is larger), so the child's own high-water mark comes from /proc (VmHWM: this image only).
    hwm = next(int(line.split()[1]) for line in Path('/proc/self/status').read_text().splitlines()
               if line.startswith('VmHWM:'))
    print(json.dumps({'frames': frames, 'seconds': seconds, 'maxrss_mb': hwm / 1024,
                      'ru_maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(job: str, src: Path, dst: Path) -> dict:
    env = {**os.environ, 'OMP_NUM_THREADS': '2'}
    out = subprocess.run([sys.executable, __file__, '--child', job, str(src), str(dst)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f'{job} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file()) if path.is_dir() else path.stat().st_size


def video_psnr(src: Path, back: Path, every: int = 37) -> tuple[float, float]:
    from vla_collect.episode_io import list_episodes, open_episode
    from vla_collect.lerobot_format import psnr
    values = []
    for a, b in zip(list_episodes(src), list_episodes(back)):
        with open_episode(a) as x, open_episode(b) as y:
            for key in ('observations/images', 'observations/images_wrist'):
                for i in range(0, len(x), every):
                    values.append(psnr(x.file[key][i], y.file[key][i]))
    return float(min(values)), float(np.mean(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, nargs='+', default=[5.0, 10.0])
    parser.add_argument('--size', type=int, default=224, help='image size (px)')
    parser.add_argument('--episode-seconds', type=float, default=20.0)
    parser.add_argument('--unique', type=int, default=8, help='distinct episodes generated (8)')
    parser.add_argument('--work', type=Path, help='scratch directory (default: a temporary one; '
                        'an existing WORK/pool of episodes and bags is reused)')
    parser.add_argument('--child', nargs=3, metavar=('JOB', 'SRC', 'DST'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    capability = subprocess.run([sys.executable, '-c', 'import torch; print(torch.backends.cpu.'
                                 'get_cpu_capability())'], capture_output=True, text=True).stdout.strip()
    print(f'CPU: {os.cpu_count()} cores, {capability}; the machine is shared with other jobs '
          '(figures are lower bounds)', flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix='bench_convert_'))
    rows = []
    try:
        steps = int(round(args.episode_seconds * FPS))
        pool = work / 'pool'
        if not (pool / 'mcap').is_dir():
            t0 = time.perf_counter()
            write_episodes(pool / 'hdf5', args.unique, steps, args.size)
            write_bags(pool / 'hdf5', pool / 'mcap')
            print(f'{args.unique} distinct episodes x {steps} steps, 2 cameras {args.size} px, as HDF5 '
                  f'and MCAP in {time.perf_counter() - t0:.0f} s', flush=True)
        from vla_collect.episode_io import list_episodes
        unique = list_episodes(pool / 'hdf5')
        for minutes in args.minutes:
            episodes = max(1, int(round(minutes * 60 / args.episode_seconds)))
            base = work / f'{minutes:g}min'
            src, bags = base / 'hdf5', base / 'mcap'
            src.mkdir(parents=True)
            bags.mkdir(parents=True)
            for e in range(episodes):
                original = unique[e % len(unique)]
                os.link(original, src / f'episode_{e:06d}.hdf5')
                shutil.copytree(pool / 'mcap' / original.stem, bags / f'episode_{e:06d}',
                                copy_function=os.link)
            print(f'{minutes:g} min: {episodes} episodes x {steps} steps', flush=True)
            export = run_child('export', src, base / 'lerobot')
            back = run_child('import', base / 'lerobot', base / 'back')
            rosbag = run_child('rosbag', bags, base / 'from_bag')
            low, mean = video_psnr(src, base / 'back')
            rows.append({'minutes': minutes, 'steps': episodes * steps, 'export': export, 'import': back,
                         'rosbag': rosbag, 'psnr_min': low, 'psnr_mean': mean,
                         'size_hdf5': du(src), 'size_mcap': du(bags), 'size_lerobot': du(base / 'lerobot')})
            print(json.dumps(rows[-1]), flush=True)  # each length as soon as it is measured
            for sub in ('back', 'from_bag', 'mcap', 'hdf5', 'lerobot'):
                shutil.rmtree(base / sub, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f'{"recording":<10}{"conversion":<30}{"steps/s":>9}{"x real time":>12}{"peak RSS MB":>13}  (child VmHWM)')
    for row in rows:
        for key, name in (('export', 'HDF5 -> LeRobot v3 (h264)'), ('import', 'LeRobot v3 -> HDF5'),
                          ('rosbag', 'MCAP bag -> HDF5')):
            r = row[key]
            rate = r['frames'] / r['seconds']
            print(f'{row["minutes"]:>4g} min  {name:<30}{rate:>9.0f}{rate / FPS:>12.1f}{r["maxrss_mb"]:>13.0f}')
    print()
    print(f'{"recording":<10}{"HDF5 (gzip)":>14}{"MCAP (raw)":>14}{"LeRobot v3":>14}{"video PSNR min/mean dB":>26}')
    for row in rows:
        print(f'{row["minutes"]:>4g} min  {row["size_hdf5"] / 2**20:>12.0f}MB{row["size_mcap"] / 2**20:>12.0f}MB'
              f'{row["size_lerobot"] / 2**20:>12.1f}MB{row["psnr_min"]:>15.1f} / {row["psnr_mean"]:.1f}')
    print(json.dumps(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
