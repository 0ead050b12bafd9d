"""Camera frames of a LeRobot dataset as video through PyAV: the storage settings, a writer of
one MP4 file per camera (frame k at k/fps s) and a reader that looks frames up by time.
No ROS import here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vla_collect.lerobot_meta import IMAGE_CODECS, VIDEO_CODECS, LeRobotFormatError

@dataclass
class VideoSettings:
    """How camera frames are stored."""

    codec: str = 'h264'  # h264 | av1 (video through PyAV) | png (lossless images in the parquet)
    crf: int | None = None  # quality (lower = better); default 18 for h264, 30 for av1 (LeRobot's)
    gop: int = 2  # keyframe interval: LeRobot's default, so random access decodes <= 2 frames
    preset: str | None = None  # encoder speed preset (libx264: 'veryfast' by default)
    pix_fmt: str | None = None  # yuv420p (default: what players expect) | yuv444p (sharper colour)

    def __post_init__(self) -> None:
        if self.codec not in (*VIDEO_CODECS, *IMAGE_CODECS):
            raise LeRobotFormatError(f'unknown camera codec {self.codec!r}; expected one of '
                                     f'{[*VIDEO_CODECS, *IMAGE_CODECS]}')
        if self.crf is None:
            self.crf = 30 if self.codec == 'av1' else 18
        if self.gop < 1:
            raise LeRobotFormatError(f'gop must be >= 1, got {self.gop}')
        if self.pix_fmt not in (None, 'yuv420p', 'yuv444p'):
            raise LeRobotFormatError(f'pix_fmt must be yuv420p or yuv444p, got {self.pix_fmt!r}')
        if self.codec == 'av1' and self.pix_fmt == 'yuv444p':
            raise LeRobotFormatError('libsvtav1 encodes 4:2:0 only; use --pix-fmt yuv420p or h264')

    @property
    def is_video(self) -> bool:
        return self.codec in VIDEO_CODECS

    def pix_fmt_for(self, shape: Sequence[int]) -> str:
        # 4:2:0 (what players and LeRobot's visualiser expect) needs even sizes
        even = shape[0] % 2 == 0 and shape[1] % 2 == 0
        if self.pix_fmt == 'yuv420p' and not even:
            raise LeRobotFormatError(f'yuv420p needs even image sizes, got {tuple(shape[:2])}; '
                                     'use --pix-fmt yuv444p')
        return self.pix_fmt or ('yuv420p' if even else 'yuv444p')


class VideoFileWriter:
    """Frames of one camera into one MP4 file, frame k at k/fps seconds."""

    def __init__(self, path: Path, fps: float, shape: Sequence[int], settings: VideoSettings):
        import av
        encoder, _ = VIDEO_CODECS[settings.codec]
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(path), mode='w', format='mp4')
        options = {'g': str(settings.gop), 'crf': str(settings.crf)}
        if settings.codec == 'h264':
            options['preset'] = settings.preset or 'veryfast'
        elif settings.preset:
            options['preset'] = settings.preset
        try:
            self.stream = self.container.add_stream(encoder, rate=self.rate, options=options)
        except (av.error.FFmpegError, ValueError) as exc:
            self.container.close()
            raise LeRobotFormatError(f'cannot encode {settings.codec} ({encoder}) with this PyAV '
                                     f'build: {exc}') from None
        self.stream.width, self.stream.height = int(shape[1]), int(shape[0])
        self.stream.pix_fmt = settings.pix_fmt_for(shape)
        self.stream.codec_context.time_base = 1 / self.rate
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import av
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0


class VideoFrameReader:
    """Frames of one MP4 file by time, decoded forward (re-opened and seeked when asked for an
    earlier time), so reading episodes in order decodes each frame once."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.tolerance = 0.5 / fps
        self._open(None)

    def _open(self, seek_to: float | None) -> None:
        import av
        if not self.path.is_file():
            raise LeRobotFormatError(f'{self.path}: missing video file')
        try:
            self.container = av.open(str(self.path))
            stream = self.container.streams.video[0]
            stream.thread_type = 'AUTO'
            if seek_to is not None and seek_to > 0:
                self.container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
            self._frames = self.container.decode(stream)
        except (av.error.FFmpegError, IndexError) as exc:
            raise LeRobotFormatError(f'{self.path}: not a readable video ({exc})') from None
        self._current = None  # (time, ndarray) of the last decoded frame

    def _next(self):
        import av
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            raise LeRobotFormatError(f'{self.path}: decoding failed ({exc}); truncated or '
                                     'corrupt video?') from None
        return float(frame.time), frame

    def frame_at(self, t: float) -> np.ndarray:
        if self._current is not None and self._current[0] > t + self.tolerance:
            self.close()
            self._open(t)
        while self._current is None or self._current[0] < t - self.tolerance:
            item = self._next()
            if item is None:
                have = f'last frame at {self._current[0]:.4f} s' if self._current else 'no frame'
                raise LeRobotFormatError(f'{self.path}: no frame at {t:.4f} s ({have}); '
                                         'truncated video or wrong from_timestamp?')
            self._current = item
        time, frame = self._current
        if abs(time - t) > self.tolerance:
            raise LeRobotFormatError(f'{self.path}: no frame within {self.tolerance:.4f} s of '
                                     f'{t:.4f} s (nearest at {time:.4f} s)')
        if not isinstance(frame, np.ndarray):
            frame = frame.to_ndarray(format='rgb24')
            self._current = (time, frame)
        return frame

    def close(self) -> None:
        self.container.close()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images; inf when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
