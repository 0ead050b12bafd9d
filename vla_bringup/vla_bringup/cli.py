"""``vla``: runs the suite's scenarios where there is no ``ros2`` CLI (and anywhere else).

    vla sim --task pick_red            the simulated arm + scripted expert (= sim.launch.py)
    vla evaluate --policy expert ...   closed-loop episodes through ROS, results JSON
    vla demo                           the end-to-end demo

``vla COMMAND --help`` describes each command.
"""
from __future__ import annotations

import argparse
import sys

from vla_bringup import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vla', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for command in commands.COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, 'passthrough', False):
        parser.error(f'unrecognized arguments: {" ".join(rest)}')
    try:
        return int(args.func(args, rest) or 0)
    except KeyboardInterrupt:
        print('vla: interrupted', file=sys.stderr)
        return 130
    except commands.CommandError as exc:
        print(f'vla {args.command}: error: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
