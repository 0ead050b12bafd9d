"""The evaluation report's Markdown and HTML: one ``Report``, two Jinja2 templates.

``templates/report.md.j2`` links the figures (``figures/NAME.png``) and rollouts by paths
relative to the report directory; ``templates/report.html.j2`` is one self-contained page
(autoescaped): figures, and rollout GIFs/MP4s up to ``max_bytes``, are inlined as data URIs,
larger media are linked by a relative path, which works while the run directory stays together.
"""
from __future__ import annotations

import base64
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from vla_bringup.report_inputs import MEDIA_TYPES
from vla_bringup.report_model import Report

TEMPLATES = Path(__file__).resolve().parent / 'templates'  # installed as package data
BROWSER_CODECS = ('avc1', 'h264', 'x264', 'vp09', 'av01', 'hev1', 'hvc1')  # what <video> plays


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=lambda name: name.endswith('.html.j2'),  # the page; Markdown is plain text
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters['md_cell'] = lambda cell: cell.replace('|', '\\|')
    env.filters['data_uri'] = data_uri
    return env


def render_markdown(report: Report, report_dir: Path) -> str:
    """``report.md``: the tables and notes, figures and rollouts linked from ``report_dir``."""
    def link(path: Path) -> str:
        return Path(os.path.relpath(path, report_dir)).as_posix()
    text = _environment().get_template('report.md.j2').render(report=report, link=link)
    return text.rstrip() + '\n'


def render_html(report: Report, report_dir: Path, max_bytes: int) -> str:
    """``index.html``: one page, figures and rollout media up to ``max_bytes`` inlined."""
    return _environment().get_template('report.html.j2').render(
        report=report, media=functools.partial(media_view, report_dir=report_dir,
                                               max_bytes=max_bytes))


def data_uri(data: bytes, mime: str) -> str:
    return f'data:{mime};base64,{base64.b64encode(data).decode("ascii")}'


@dataclass(frozen=True)
class MediaView:
    """How the page shows one rollout file."""

    kind: str  # 'img' (GIF), 'video' (MP4) or '' (a file the page cannot show)
    name: str  # the file name
    src: str = ''  # a data URI, or a path relative to the report
    href: str = ''  # the path relative to the report (a download link beside a video)
    poster: str = ''  # a data URI of a video's middle frame, '' when it could not be read
    note: str = ''  # ' (linked, 7.1 MB)', ' (codec mp4v: ...)'


def media_view(path: Path, report_dir: Path, max_bytes: int) -> MediaView:
    mime = MEDIA_TYPES.get(path.suffix.lower())
    if mime is None:
        return MediaView('', path.name)
    size = path.stat().st_size
    href = os.path.relpath(path, report_dir)
    if size <= max_bytes:
        src, note = data_uri(path.read_bytes(), mime), ''
    else:
        src, note = href, f' (linked, {size / 1e6:.1f} MB)'
    if mime == 'image/gif':
        return MediaView('img', path.name, src, href, note=note)
    poster, fourcc = video_preview(path)
    if fourcc and fourcc not in BROWSER_CODECS:
        note += f' (codec {fourcc}: browsers may not play it, the file does in a video player)'
    return MediaView('video', path.name, src, href,
                     '' if poster is None else data_uri(poster, 'image/png'), note)


def video_preview(path: Path) -> tuple[bytes | None, str | None]:
    """(PNG of the middle frame, fourcc) of a video, via OpenCV; (None, None) if unreadable.

    The frame is the ``<video>`` poster, so the page shows the rollout even where the browser
    cannot decode the codec (OpenCV's own ``mp4v`` writer, for one).
    """
    try:
        import cv2
    except ImportError:
        return None, None
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None, None
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        fourcc = ''.join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip().lower() or None
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if frames > 1:
            cap.set(cv2.CAP_PROP_POS_FRAMES, frames // 2)
        ok, frame = cap.read()
        if not ok:
            return None, fourcc
        ok, png = cv2.imencode('.png', frame)
        return (png.tobytes() if ok else None), fourcc
    finally:
        cap.release()
