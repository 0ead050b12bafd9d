"""``vla dataset import``: recordings from other tools -> HDF5 episodes of this suite.

    vla dataset import --format rosbag BAG_OR_DIR OUT --mapping topics.yaml [--instruction TEXT] [--fps HZ]
    vla dataset import --format aloha FILE_OR_DIR OUT --instruction TEXT [--fps HZ] [--camera NAME]
    vla dataset import --format lerobot DATASET_DIR OUT [--camera NAME] [--drop FEATURE ...]
    vla dataset export --format lerobot EPISODE_DIR DATASET_DIR [--video-codec h264|av1|png]

Writes ``OUT/episode_*.hdf5`` (numbering continues after what is there) and
``OUT/import_report.json`` (what was kept, resampled and dropped).  Every written episode passes
``vla dataset validate``; nothing half-written is left under a final name.  ``export`` writes a
LeRobotDataset v3.0 directory (into ``OUT.tmp-<pid>``, renamed when complete) with its report in
``OUT/meta/vla_ros2.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vla_common.files import atomic_write_json

FORMATS = ('rosbag', 'aloha', 'lerobot')
EXPORT_FORMATS = ('lerobot',)


def add_parser(sub) -> None:
    p = sub.add_parser('import', help='convert rosbag2/MCAP bags, LeRobot v3 datasets or ALOHA '
                       'HDF5 files to episodes',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--format', required=True, choices=FORMATS, help='what SRC holds')
    p.add_argument('src', type=Path, help='a bag directory, .mcap file, LeRobot dataset directory, '
                   'ALOHA .hdf5 file, or a directory of them')
    p.add_argument('out', type=Path, help='episode directory to write into')
    p.add_argument('--mapping', type=Path, help='rosbag: topic-mapping YAML (see the docs of '
                   'vla_collect.bag_import); aloha: optional YAML {file name: instruction}; '
                   'lerobot: optional YAML {state: KEY, action: KEY, velocity: KEY} of feature keys')
    p.add_argument('--instruction', help='language command of every imported episode (a bag\'s '
                   'instruction topic, if mapped, or a LeRobot episode\'s task is used otherwise)')
    p.add_argument('--fps', type=float, help='rosbag: resampling rate (default: the mapping\'s, '
                   '30); aloha: the recording rate (default 50); lerobot: not used (info.json\'s)')
    p.add_argument('--camera', help='aloha, lerobot: the camera that becomes the main image '
                   '(default: front/top/cam_high, else the first); the others become extra cameras')
    p.add_argument('--drop', action='append', default=[], metavar='FEATURE',
                   help='lerobot: a feature to leave out (repeatable), e.g. observation.effort')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)
    p = sub.add_parser('export', help='convert episodes to a LeRobotDataset v3.0 directory',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--format', required=True, choices=EXPORT_FORMATS, help='what OUT becomes')
    p.add_argument('src', type=Path, help='episode directory (episode_*.hdf5)')
    p.add_argument('out', type=Path, help='dataset directory to create (must not exist)')
    p.add_argument('--video-codec', default='h264', choices=('h264', 'av1', 'png'),
                   help='cameras as H.264 (libx264, default) or AV1 (libsvtav1) MP4 video, or as '
                   'lossless PNG images in the parquet files (LeRobot\'s image dtype; larger)')
    p.add_argument('--crf', type=int, help='video quality, lower is better (default 18 for h264, '
                   '30 for av1)')
    p.add_argument('--gop', type=int, default=2, help='keyframe interval (default 2, LeRobot\'s: '
                   'random access decodes at most 2 frames)')
    p.add_argument('--pix-fmt', choices=('yuv420p', 'yuv444p'), help='video chroma: yuv420p '
                   '(default: plays everywhere) or yuv444p (h264 only; sharper colour edges)')
    p.add_argument('--main-camera', default='front', help='LeRobot name of the main camera '
                   '(observation.images.<name>; default front); extra cameras keep their names')
    p.add_argument('--robot-type', help='info.json robot_type (default: the episodes\' robot)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run_export)


def _write_report(out: Path, report: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'import_report.json'
    return atomic_write_json(path, report)


def run(args: argparse.Namespace) -> int:
    from vla_collect.dataset_cli import DatasetError
    if args.fps is not None and not args.fps > 0:
        raise DatasetError(f'--fps must be > 0, got {args.fps}')
    if not args.src.exists():
        raise DatasetError(f'{args.src}: no such file or directory')
    if args.format != 'lerobot' and args.drop:
        raise DatasetError('--drop applies to --format lerobot only')
    if args.format == 'lerobot':
        report = _import_lerobot(args)
        failed = report['failed']
    elif args.format == 'rosbag':
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


def _import_lerobot(args: argparse.Namespace) -> dict:
    import yaml

    from vla_collect.dataset_cli import DatasetError
    from vla_collect.lerobot_import import import_lerobot
    from vla_collect.lerobot_meta import LeRobotFormatError
    if args.fps is not None:
        raise DatasetError('--fps does not apply to --format lerobot: the dataset\'s fps '
                           '(meta/info.json) is kept')
    mapping = yaml.safe_load(args.mapping.read_text()) if args.mapping else None
    allowed = {'state', 'action', 'velocity'}
    if mapping is not None and (not isinstance(mapping, dict) or set(mapping) - allowed):
        raise DatasetError(f'{args.mapping}: expected a mapping with keys among {sorted(allowed)} '
                           '(feature keys of the dataset)')
    try:
        return import_lerobot(args.src, args.out, args.instruction, args.camera, args.drop, mapping,
                              progress=not args.quiet)
    except LeRobotFormatError as exc:
        raise DatasetError(str(exc)) from None


def run_export(args: argparse.Namespace) -> int:
    from vla_collect.dataset_cli import DatasetError
    from vla_collect.lerobot_export import export_lerobot
    from vla_collect.lerobot_meta import LeRobotFormatError
    from vla_collect.lerobot_video import VideoSettings
    try:
        settings = VideoSettings(codec=args.video_codec, crf=args.crf, gop=args.gop,
                                 pix_fmt=args.pix_fmt)
        report = export_lerobot(args.src, args.out, settings, main_camera=args.main_camera,
                                robot_type=args.robot_type, progress=not args.quiet)
    except LeRobotFormatError as exc:
        raise DatasetError(str(exc)) from None
    for line in report['skipped']:
        print(f'skipped: {line}', file=sys.stderr)
    if report['off_grid_episodes']:
        print(f'note: {len(report["off_grid_episodes"])} episode(s) have gaps in their time stamps '
              f'(dropped steps); LeRobot\'s timestamp is frame_index / fps, the recorded times are '
              'kept in source_timestamp', file=sys.stderr)
    storage = report['camera_storage']
    codec = (f'{storage["codec"]} video (crf {storage["crf"]}, gop {storage["gop"]})'
             if not storage['lossless'] else 'PNG images (lossless)')
    print(f'{len(report["episodes"])} episode(s), {report["frames"]} frames -> {args.out} '
          f'(LeRobotDataset v3.0, cameras as {codec}); report: {args.out}/meta/vla_ros2.json')
    return 0
