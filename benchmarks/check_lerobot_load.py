"""Load a dataset written by `vla dataset export --format lerobot` with LeRobot's own LeRobotDataset.

    python benchmarks/check_lerobot_load.py                  # make the check venv if missing, export
                                                              # a small dataset, load it, print it
    python benchmarks/check_lerobot_load.py --setup          # only make the venv
    /tmp/lerobot_venv/bin/python benchmarks/check_lerobot_load.py --load DATASET_DIR [--json]

The reference reader lives in its own venv (default /tmp/lerobot_venv, or $LEROBOT_VENV), never in
the project's: lerobot 0.4.4 (the last release for Python 3.11) pins torch<2.11 and
torchvision<0.26, which would download gigabytes, so the venv takes torch 2.14.1 +
torchvision 0.29.1 from this machine's wheel store (5.5 GB in the venv), lerobot itself with
--no-deps, the few packages `lerobot.datasets` imports, torchcodec 0.14 (for torch 2.14) and
Debian's FFmpeg 5.1 libraries for it.  The test vla_collect/test/test_lerobot_format.py runs
`--load` with that venv's Python (LEROBOT_PYTHON) when it exists.
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

VENV = Path(os.environ.get('LEROBOT_VENV', '/tmp/lerobot_venv'))
LEROBOT = 'lerobot==0.4.4'
TORCH = ['torch==2.14.1', 'torchvision==0.29.1']
#: what `import lerobot.datasets.lerobot_dataset` needs from lerobot 0.4.4's dependencies;
#: torchcodec (LeRobot's default video decoder; torchvision 0.29 has no VideoReader for its
#: 'pyav' fallback) is the release built for torch 2.14 and loads the system's FFmpeg libraries
DATASET_DEPS = ['datasets>=4,<5', 'pandas<3', 'pyarrow==26.0.1', 'av==15.1.0', 'huggingface-hub<0.36',
                'accelerate>=1.10,<2', 'packaging', 'pillow', 'numpy<2.3', 'termcolor', 'jsonlines']
TORCHCODEC = 'torchcodec==0.14.0'
FFMPEG_LIBS = ['libavcodec59', 'libavformat59', 'libavutil57', 'libswscale6', 'libswresample4',
               'libavdevice59', 'libavfilter8']  # Debian 12's FFmpeg 5.1


def setup(venv: Path = VENV) -> Path:
    python = venv / 'bin' / 'python'
    if python.exists() and subprocess.run([str(python), '-c', 'import lerobot.datasets.lerobot_dataset'],
                                          capture_output=True).returncode == 0:
        return python
    start = time.time()
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    pip = [str(python), '-m', 'pip', 'install', '-q']
    subprocess.run(pip + TORCH, check=True)
    subprocess.run(pip + ['--no-deps', LEROBOT], check=True)
    subprocess.run(pip + DATASET_DEPS, check=True)
    subprocess.run(pip + ['--no-deps', TORCHCODEC], check=True)
    if subprocess.run(['sh', '-c', 'ldconfig -p | grep -q libavcodec.so'], check=False).returncode:
        if os.geteuid() == 0 and shutil.which('apt-get'):
            subprocess.run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', *FFMPEG_LIBS],
                           check=True, env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'})
        else:
            print(f'torchcodec needs FFmpeg\'s libraries: sudo apt-get install {" ".join(FFMPEG_LIBS)} '
                  '(video datasets fail to decode without them; --codec png works)', file=sys.stderr)
    print(f'made {venv} in {time.time() - start:.0f} s', file=sys.stderr)
    return python


def load(root: Path, as_json: bool) -> dict:
    """Runs inside the lerobot venv: what LeRobotDataset sees in ``root``."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import lerobot
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    meta = LeRobotDatasetMetadata('local/vla_ros2_export', root=root)
    fps = meta.fps
    dataset = LeRobotDataset('local/vla_ros2_export', root=root,
                             delta_timestamps={'action': [0.0, 1.0 / fps]})
    items = [dataset[i] for i in range(len(dataset))]  # every frame decodes (episode boundaries too)
    first, last = items[0], items[-1]
    cameras = dataset.meta.camera_keys
    seen = {
        'lerobot': lerobot.__version__, 'torch': torch.__version__,
        'video_backend': dataset.video_backend if dataset.meta.video_keys else None,
        'frames': len(dataset), 'decoded': len(items), 'episodes': dataset.num_episodes, 'fps': fps,
        'tasks': list(dataset.meta.tasks.index),
        'features': {k: v['dtype'] for k, v in dataset.features.items()},
        'names': {k: v['names'] for k, v in dataset.features.items() if v['names'] and k in
                  ('observation.state', 'action', 'observation.velocity')},
        'shapes': {k: list(v.shape) for k, v in last.items() if hasattr(v, 'shape')},
        'first_task': first['task'], 'last_task': last['task'],
        'last_action': last['action'][0].tolist(), 'action_is_pad': last['action_is_pad'].tolist(),
        'last_front': last[cameras[0]].tolist() if cameras else None,
    }
    if as_json:
        print(json.dumps(seen))
    else:
        print(f'lerobot {seen["lerobot"]} (torch {seen["torch"]}, video backend '
              f'{seen["video_backend"]}) loaded {root}:')
        print(f'  {seen["frames"]} frames ({seen["decoded"]} read back, every camera frame decoded), '
              f'{seen["episodes"]} episodes, {fps} fps, tasks {seen["tasks"]}')
        print('  (action is [2, A]: the check asks for delta_timestamps {action: [0, 1/fps]})')
        for key, dtype in seen['features'].items():
            print(f'  {key:<28} {dtype:<8} {seen["shapes"].get(key, "")}')
        print(f'  last frame: task {seen["last_task"]!r}, action {seen["last_action"]}, '
              f'action_is_pad {seen["action_is_pad"]}')
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--setup', action='store_true', help='only make the lerobot venv')
    parser.add_argument('--load', type=Path, help='(inside the lerobot venv) load this dataset')
    parser.add_argument('--json', action='store_true', help='with --load: print one JSON line')
    parser.add_argument('--codec', default='h264', choices=('h264', 'av1', 'png'),
                        help='camera storage of the dataset exported for the check')
    args = parser.parse_args()
    if args.load:
        load(args.load, args.json)
        return 0
    python = setup()
    if args.setup:
        print(python)
        return 0
    # export a small simulated dataset with this (the project's) Python, load it with the venv's
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ('vla_collect', 'vla_sim')]
    from bench_dataset_convert import write_episodes  # noqa: E402  (same directory)

    from vla_collect.lerobot_format import VideoSettings, export_lerobot
    work = Path(tempfile.mkdtemp(prefix='lerobot_check_'))
    try:
        src = work / 'episodes'
        write_episodes(src, episodes=2, steps=60, size=64)
        export_lerobot(src, work / 'dataset', VideoSettings(args.codec), progress=False)
        env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_LEROBOT_HOME': str(work / 'hf')}
        return subprocess.run([str(python), __file__, '--load', str(work / 'dataset')], env=env).returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
