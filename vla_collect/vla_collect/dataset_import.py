"""``vla dataset import``: recordings from other tools -> HDF5 episodes of this suite.

    vla dataset import --format rosbag BAG_OR_DIR OUT --mapping topics.yaml [--instruction TEXT] [--fps HZ]
    vla dataset import --format aloha FILE_OR_DIR OUT --instruction TEXT [--fps HZ] [--camera NAME]

Writes ``OUT/episode_*.hdf5`` (numbering continues after what is there) and
``OUT/import_report.json`` (what was kept, resampled and dropped).  Every written episode passes
``vla dataset validate``; nothing half-written is left under a final name.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FORMATS = ('rosbag', 'aloha')


def add_parser(sub) -> None:
    p = sub.add_parser('import', help='convert rosbag2/MCAP bags or ALOHA HDF5 files to episodes',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--format', required=True, choices=FORMATS, help='what SRC holds')
    p.add_argument('src', type=Path, help='a bag directory, .mcap file, ALOHA .hdf5 file, or a '
                   'directory of them')
    p.add_argument('out', type=Path, help='episode directory to write into')
    p.add_argument('--mapping', type=Path, help='rosbag: topic-mapping YAML (see the docs of '
                   'vla_collect.bag_import); aloha: optional YAML {file name: instruction}')
    p.add_argument('--instruction', help='language command of every imported episode (a bag\'s '
                   'instruction topic, if mapped, is used otherwise)')
    p.add_argument('--fps', type=float, help='rosbag: resampling rate (default: the mapping\'s, '
                   '30); aloha: the recording rate (default 50)')
    p.add_argument('--camera', help='aloha: the camera that becomes the main image (default: the '
                   'first); the others become extra cameras')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)


def _write_report(out: Path, report: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'import_report.json'
    tmp = path.with_name('.import_report.json.tmp')
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> int:
    from vla_collect.dataset_cli import DatasetError
    if args.fps is not None and not args.fps > 0:
        raise DatasetError(f'--fps must be > 0, got {args.fps}')
    if not args.src.exists():
        raise DatasetError(f'{args.src}: no such file or directory')
    if args.format == 'rosbag':
        from vla_collect.bag_import import BagImportError, BagMapping, find_bags, import_bags
        if args.mapping is None:
            raise DatasetError('--format rosbag needs --mapping topics.yaml (which topics are '
                               'the cameras, joint states, command and instruction)')
        try:
            mapping = BagMapping.from_yaml(args.mapping)
            if args.fps is not None:
                mapping.fps = args.fps
            report = import_bags(find_bags(args.src), args.out, mapping, args.instruction,
                                 progress=not args.quiet).as_dict()
        except BagImportError as exc:
            raise DatasetError(str(exc)) from None
        failed = []
    else:
        import yaml

        from vla_collect.aloha_import import ALOHA_FPS, AlohaImportError, import_aloha
        names = yaml.safe_load(args.mapping.read_text()) if args.mapping else None
        if names is not None and not isinstance(names, dict):
            raise DatasetError(f'{args.mapping}: expected a mapping {{file name: instruction}}')
        try:
            report = import_aloha([args.src], args.out, args.instruction, names,
                                  args.fps or ALOHA_FPS, args.camera, progress=not args.quiet)
        except AlohaImportError as exc:
            raise DatasetError(str(exc)) from None
        failed = report['failed']
    path = _write_report(args.out, report)
    for episode in report['episodes']:
        dropped = f', {episode["dropped"]} dropped' if episode.get('dropped') else ''
        print(f'{episode["source"]} -> {episode["path"]} ({episode["steps"]} steps{dropped})')
    for item in failed:
        print(f'error: {item["source"]}: {item["error"]}', file=sys.stderr)
    for line in report.get('skipped', []):
        print(f'skipped: {line}', file=sys.stderr)
    print(f'{len(report["episodes"])} episode(s) written to {args.out}, {len(failed)} failed; '
          f'report: {path}')
    return 1 if failed or not report['episodes'] else 0
