"""Where a package's ``config/*.yaml`` files are: its installed share directory
(``share/<package>/config``, found through the ament index), then the source tree
(``<package>/config`` beside the package's Python code, for a checkout run without an install).

One lookup for every package: ``vla_common`` finds ``robot.yaml`` with it, ``vla_bringup``'s
scenarios their node parameter files.  No rclpy import here.
"""
from __future__ import annotations

from pathlib import Path

#: the repository root of a source checkout (each package is a folder of it)
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def config_dirs(package: str) -> list[Path]:
    """``share/<package>/config`` of the installed package (when the ament index knows it),
    then ``<package>/config`` of the source tree."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory(package)) / 'config')
    except (ImportError, LookupError, ValueError, OSError):
        # not installed, not in the index, or AMENT_PREFIX_PATH unset (an OSError)
        pass
    return dirs + [SOURCE_ROOT / package / 'config']


def config_file(package: str, name: str) -> Path:
    """The first ``<dir>/<name>`` of :func:`config_dirs` that exists; FileNotFoundError naming
    the places looked in otherwise."""
    dirs = config_dirs(package)
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f'config file {name!r} of {package} not found in {[str(d) for d in dirs]}')
