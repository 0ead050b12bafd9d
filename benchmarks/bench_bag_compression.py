"""The recorder's raw-topic bag (``record_bag: true``) with and without ``bag_compression: zstd``.

A simulated pick (two 224x224 rgb8 cameras, joint states and commands at 30 Hz, rendered by
MuJoCo) is written once as a plain bag; its messages are then written again through the
recorder's own writer (``vla_collect.episode_bag.EpisodeBag``) per storage and compression,
in alternation so machine load hits every variant alike, and each bag is imported back with
``vla dataset import --format rosbag``'s code.  Prints, per variant: the size on disk, the
writer's CPU time per second of episode (the recorder pays it at record time) and the import
time.

    ./run.sh bench bench_bag_compression.py
    python benchmarks/bench_bag_compression.py --steps 300 --repeats 3
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=150, help='ticks of the episode (default 150 = 5 s)')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()

    from rosbags.rosbag2 import Reader

    from vla_collect.bag_import import BagMapping, import_bags
    from vla_collect.episode_bag import EpisodeBag
    from vla_collect.testing import BAG_FPS, BAG_MAPPING, simulated_episode, write_bag

    root = Path(tempfile.mkdtemp(prefix='bench_bag_'))
    try:
        source = write_bag(root / 'source', simulated_episode(args.steps, image_size=args.image_size))
        with Reader(source) as reader:
            messages = [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]
        seconds = args.steps / BAG_FPS
        variants = [(s, c) for s in ('mcap', 'sqlite3') for c in ('none', 'zstd')]
        results = {v: {'write': [], 'import': []} for v in variants}
        for repeat in range(args.repeats):
            for storage, compression in variants:
                episode = root / f'{storage}_{compression}_{repeat}' / 'episode_000000.hdf5'
                start = time.process_time()
                bag = EpisodeBag(episode, storage, compression)
                for topic, msgtype, t, raw in messages:
                    bag.write(topic, msgtype, t, raw)
                path = bag.close('bench', True)
                results[(storage, compression)]['write'].append(time.process_time() - start)
                results[(storage, compression)]['size'] = sum(
                    p.stat().st_size for p in path.iterdir())
                start = time.perf_counter()
                import_bags([path], episode.parent / 'out', BagMapping.from_dict(BAG_MAPPING), progress=False)
                results[(storage, compression)]['import'].append(time.perf_counter() - start)
        print(f'{len(messages)} messages, {seconds:.1f} s of episode, 2 cameras {args.image_size}x'
              f'{args.image_size}; median of {args.repeats}')
        print(f'{"storage":<8} {"compression":<12} {"MB":>7} {"MB/min":>7} {"write CPU ms per s":>19} '
              f'{"import s":>9}')
        for (storage, compression), r in results.items():
            write = sorted(r['write'])[len(r['write']) // 2]
            imp = sorted(r['import'])[len(r['import']) // 2]
            print(f'{storage:<8} {compression:<12} {r["size"] / 2**20:7.2f} '
                  f'{r["size"] / 2**20 / seconds * 60:7.1f} {write / seconds * 1e3:19.1f} {imp:9.2f}')
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
