"""Atomic file writes: a reader (or a run resumed after a crash) sees the old file or the new
one, never half of one.

Each write goes to a temporary file beside the target (same directory, so the rename stays on
one file system), is flushed to disk, and is renamed over the target with ``os.replace``.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set it)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(out) as tmp: writer.save(tmp)``: a temporary path beside ``path``, with
    the same suffix (libraries that pick a format by extension still do), renamed to ``path``
    when the block succeeds and removed when it raises.  Creates the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=f'.tmp{path.suffix}', dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; these files are for reading
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = 'utf-8') -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, **dumps_kwargs) -> Path:
    """Write ``json.dumps(obj, indent=indent, **dumps_kwargs)`` to ``path`` atomically (the JSON is
    built before the file is touched, so an unserialisable object leaves no file behind)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, **dumps_kwargs))


def gif_frame_ms(fps: float) -> int:
    """The frame delay of a GIF played at ``fps``, in milliseconds as imageio/Pillow take it.

    GIF stores delays in hundredths of a second, so the delay is rounded to 10 ms; and browsers
    play delays under 20 ms at 100 ms, so it is at least 20 ms (50 fps at most).  (Passing
    ``1 / fps``, seconds, is the old mistake: Pillow reads it as 0 ms.)
    """
    if not fps > 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    return max(20, int(round(100.0 / fps)) * 10)


def write_gif(frames, path: str | Path, fps: float) -> Path:
    """``frames`` (HxWx3 uint8 arrays) as a looping animated GIF at ``fps``, written atomically;
    returns ``path``.  Needs imageio (imported here, so importing this module does not)."""
    import imageio.v2 as imageio
    path = Path(path)
    with atomic_path(path) as tmp:
        imageio.mimsave(tmp, list(frames), duration=gif_frame_ms(fps), loop=0)
    return path
