"""The recorder's logic, without ROS: synchronised sampling of the latest value of every
stream with a staleness limit per stream, episode start/stop/discard, drop accounting.

The ``teleop_collector`` node converts messages, feeds :meth:`Recorder.update` from its
subscriptions and calls :meth:`Recorder.sample` from a 30 Hz timer.  Beside a lock-step
simulator it pairs by header stamps instead (:class:`vla_collect.stream_pairing.TickPairing`)
and writes each tick with :meth:`Recorder.record`.

With ``background=True`` the HDF5 writes (compression, the periodic flush) run in one worker
thread, in order, so a caller on a ROS executor is never held up by the disk (a lock-step
simulator waits for the recorder's acknowledgement of every tick).  The step's shape is checked
at once; a step the writer refuses later (a non-finite value) is counted as dropped then, and a
write error (disk full) aborts the episode and is raised by the next call.  :meth:`Recorder.stop`
and :meth:`Recorder.discard` wait for the pending writes first, so a saved episode holds every
step counted and only complete files get their final name.  At most ``max_pending`` steps wait
(then :meth:`Recorder.record` waits too).

The stream names and pairing rules are :mod:`vla_collect.stream_pairing`; this module keeps the
episodes' lifecycle and writing.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_collect.episode_schema import EpisodeWriteError, next_episode_path
from vla_collect.episode_writer import DEFAULT_MIN_FREE_BYTES, EpisodeWriter
from vla_collect.stream_pairing import ACTION, IMAGE, JOINT_STATES, Stream

log = logging.getLogger(__name__)
ACTION_EE = 'action_ee'  # the stream of end-effector commands (Recorder(ee_action_names=...))


class RecorderError(RuntimeError):
    """A request the recorder cannot honour; the message says why and what to do."""


@dataclass
class EpisodeSummary:
    path: Path | None
    steps: int
    dropped: int
    success: bool
    language_command: str
    saved: bool

    def as_dict(self) -> dict:
        return {'path': str(self.path) if self.path else None, 'steps': self.steps,
                'dropped': self.dropped, 'success': self.success,
                'language_command': self.language_command, 'saved': self.saved}


@dataclass
class _Current:
    path: Path
    language_command: str
    started: float
    attrs: dict = field(default_factory=dict)
    writer: EpisodeWriter | None = None
    steps: int = 0
    dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple] = field(default_factory=dict)  # image shapes of the first step
    failed: str = ''  # a background write aborted the episode (the message)
    failure: BaseException | None = None


class _WriterThread:
    """Runs queued calls in one daemon thread, in order (see the module docstring)."""

    def __init__(self, max_pending: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_pending)))
        self.thread = threading.Thread(target=self._run, name='episode-writer', daemon=True)
        self.thread.start()

    def submit(self, call) -> None:
        self.queue.put(call)

    def drain(self) -> None:
        """Wait until every submitted call has run."""
        self.queue.join()

    def _run(self) -> None:
        while True:
            call = self.queue.get()
            try:
                call()
            except Exception:  # noqa: BLE001 - the calls record their own errors
                log.exception('episode writer call failed')
            finally:
                self.queue.task_done()


class Recorder:
    """Samples ``image``, ``joint_states`` (positions, velocities) and ``action`` (+ extra cameras
    ``image_<camera>``, + ``action_ee`` with ``ee_action_names``: the end-effector command whose
    joint targets are ``action``, stored as ``/actions_ee``) into one HDF5 episode per start/stop,
    in ``output_dir``."""

    def __init__(self, output_dir: str | Path, joint_names: Sequence[str],
                 action_names: Sequence[str] | None = None, fps: float = 30.0,
                 max_age: Mapping[str, float] | None = None, cameras: Iterable[str] = (),
                 robot: str = 'robot', min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
                 background: bool = False, max_pending: int = 60,
                 ee_action_names: Sequence[str] | None = None) -> None:
        self.output_dir = Path(output_dir).expanduser()
        self.joint_names = [str(n) for n in joint_names]
        self.action_names = [str(n) for n in (action_names or joint_names)]
        self.ee_action_names = [str(n) for n in (ee_action_names or ())]
        if not self.joint_names:
            raise ValueError('joint_names is empty; set it (robot.yaml) to the joints to record')
        if fps <= 0:
            raise ValueError(f'fps must be > 0, got {fps}')
        self.fps = float(fps)
        self.cameras = [str(c) for c in cameras]
        self.robot = robot
        self.min_free_bytes = int(min_free_bytes)
        limits = {IMAGE: 0.2, JOINT_STATES: 0.2, ACTION: 0.2, **(max_age or {})}
        limits.setdefault(ACTION_EE, limits[ACTION])
        names = ([IMAGE, JOINT_STATES, ACTION] + [f'{IMAGE}_{c}' for c in self.cameras]
                 + ([ACTION_EE] if self.ee_action_names else []))
        for name in names:
            limits.setdefault(name, limits[IMAGE])
            if not limits[name] > 0:
                raise ValueError(f'staleness limit of {name} must be > 0 s, got {limits[name]}')
        self.streams = {n: Stream(n, float(limits[n])) for n in names}
        self.current: _Current | None = None
        self.episodes_saved = 0
        self.episodes_discarded = 0
        self.steps_recorded = 0  # over all episodes
        self.steps_dropped = 0
        self.drop_reasons: dict[str, int] = {}
        self.last_error = ''
        self.last_episode: EpisodeSummary | None = None
        # counts shared with the writer thread (background mode) change under this lock
        self._lock = threading.Lock()
        self._writer = _WriterThread(max_pending) if background else None

    # -- inputs -----------------------------------------------------------------------------
    def update(self, stream: str, value: Any, now: float) -> None:
        """Store the latest value of ``stream`` (image: (H, W, 3) uint8; joint_states:
        (positions, velocities); action: (A,) array)."""
        s = self.streams[stream]
        s.value, s.stamp = value, float(now)
        s.received += 1

    @property
    def recording(self) -> bool:
        return self.current is not None

    # -- episodes -----------------------------------------------------------------------------
    def start(self, language_command: str, now: float, attrs: Mapping[str, Any] | None = None) -> Path:
        """Begin an episode; the file is created at the first recorded step.  ``attrs`` are
        extra attributes stored with it (e.g. the simulator task and seed)."""
        if self.current is not None:
            raise RecorderError(f'already recording {self.current.path.name}; stop or discard it first')
        command = str(language_command).strip()
        if not command:
            raise RecorderError('no language command: publish one on /voice_command or set the '
                                'language_command parameter before starting an episode')
        path = next_episode_path(self.output_dir)
        self.current = _Current(path=path, language_command=command, started=float(now),
                                attrs=dict(attrs or {}))
        self.last_error = ''
        return path

    def stop(self, success: bool) -> EpisodeSummary:
        """End the episode and save it with ``success``; raises RecorderError if nothing was
        recorded (the empty episode is dropped)."""
        cur = self._require('stop')
        self._drain()
        self.current = None
        if cur.failed:
            self._failed(cur)
        summary = EpisodeSummary(cur.path, cur.steps, cur.dropped, bool(success),
                                 cur.language_command, saved=False)
        if cur.writer is None or cur.steps == 0:
            if cur.writer is not None:
                cur.writer.abort()
            self.last_episode = summary
            raise RecorderError(f'no step of {cur.path.name} was recorded ({cur.dropped} dropped: '
                                f'{self._reasons(cur.drop_reasons)}); nothing was saved')
        try:
            cur.writer.close(success=bool(success), attrs={
                **cur.attrs, 'dropped_steps': cur.dropped,
                'drop_reasons': self._reasons(cur.drop_reasons)})
        except (EpisodeWriteError, OSError) as exc:
            self.last_error = str(exc)
            self.last_episode = summary
            raise RecorderError(f'saving {cur.path} failed: {exc}') from exc
        self.episodes_saved += 1
        summary.saved = True
        self.last_episode = summary
        return summary

    def discard(self) -> EpisodeSummary:
        """Drop the current episode (its temporary file is deleted)."""
        cur = self._require('discard')
        self._drain()
        self.current = None
        if cur.writer is not None:
            cur.writer.abort()
        self.episodes_discarded += 1
        summary = EpisodeSummary(cur.path, cur.steps, cur.dropped, False, cur.language_command,
                                 saved=False)
        self.last_episode = summary
        return summary

    def _drain(self) -> None:
        if self._writer is not None:
            self._writer.drain()

    def _failed(self, cur: _Current) -> None:
        """Raise the error of a background write that aborted ``cur`` (already closed)."""
        self.current = None
        self.last_error = cur.failed
        self.last_episode = EpisodeSummary(cur.path, cur.steps, cur.dropped, False,
                                           cur.language_command, saved=False)
        raise RecorderError(f'episode {cur.path.name} aborted: {cur.failed}') from cur.failure

    def _require(self, what: str) -> _Current:
        if self.current is None:
            raise RecorderError(f'cannot {what}: no episode is being recorded')
        return self.current

    @staticmethod
    def _reasons(reasons: Mapping[str, int]) -> str:
        return ', '.join(f'{k} {v}' for k, v in sorted(reasons.items())) or 'none'

    # -- sampling -------------------------------------------------------------------------------
    def _drop(self, reason: str, cur: _Current | None = None) -> None:
        with self._lock:
            self._drop_locked(reason, cur or self.current)

    def _drop_locked(self, reason: str, cur: _Current | None) -> None:
        assert cur is not None
        cur.dropped += 1
        cur.drop_reasons[reason] = cur.drop_reasons.get(reason, 0) + 1
        self.steps_dropped += 1
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1

    def sample(self, now: float) -> bool:
        """Record one step from the latest values; False (and a counted drop) when a stream is
        stale or the step cannot be written.  Raises RecorderError when the episode had to be
        aborted (disk full, unwritable directory)."""
        cur = self.current
        if cur is None:
            return False
        stale = [s for s in self.streams.values() if not s.fresh(now)]
        if stale:
            for s in stale:
                s.stale_drops += 1
            self._drop('stale ' + '+'.join(s.name for s in stale))
            return False
        return self._write({name: s.value for name, s in self.streams.items()}, now)

    def record(self, values: Mapping[str, Any], timestamp: float) -> bool:
        """Record one step of ``values`` (every stream by name, as given to :meth:`update`) at
        ``timestamp``; a missing stream is a counted drop.  Raises RecorderError as ``sample``."""
        if self.current is None:
            return False
        missing = [name for name in self.streams if values.get(name) is None]
        if missing:
            for name in missing:
                self.streams[name].stale_drops += 1
            self._drop('missing ' + '+'.join(missing))
            return False
        return self._write(values, timestamp)

    def _write(self, values: Mapping[str, Any], now: float) -> bool:
        cur = self.current
        assert cur is not None
        if self._writer is not None:
            return self._submit(cur, values, now)
        image = values[IMAGE]
        positions, velocities = values[JOINT_STATES]
        action = values[ACTION]
        extra = {c: values[f'{IMAGE}_{c}'] for c in self.cameras}
        try:
            if cur.writer is None:
                cur.writer = self._open_writer(cur, image, extra)
            shapes = [(IMAGE, image.shape, cur.writer.image_shape)] + [
                (f'{IMAGE}_{c}', v.shape, cur.writer.camera_shapes[c]) for c, v in extra.items()]
            for name, got, want in shapes:
                if tuple(got) != tuple(want):
                    self._drop(f'{name} size changed')
                    log.warning('%s is %s, the episode started at %s; step dropped', name, got, want)
                    return False
            cur.writer.append(image, positions, velocities, action, timestamp=now,
                              extra_images=extra, action_ee=values.get(ACTION_EE))
        except (EpisodeWriteError, FileExistsError) as exc:
            if cur.writer is not None:
                cur.writer.abort()
            self.current = None
            self.last_error = str(exc)
            self.last_episode = EpisodeSummary(cur.path, cur.steps, cur.dropped, False,
                                               cur.language_command, saved=False)
            raise RecorderError(f'episode {cur.path.name} aborted: {exc}') from exc
        except ValueError as exc:  # a value the writer refuses (time going back, wrong width)
            self._drop('invalid step')
            log.warning('step dropped: %s', exc)
            return False
        cur.steps += 1
        self.steps_recorded += 1
        return True

    def _submit(self, cur: _Current, values: Mapping[str, Any], now: float) -> bool:
        """Background mode: check the step's image sizes and queue its write."""
        if cur.failed:
            self._failed(cur)
        names = [IMAGE] + [f'{IMAGE}_{c}' for c in self.cameras]
        shapes = {name: tuple(np.shape(values[name])) for name in names}
        if not cur.shapes:
            cur.shapes = shapes
        for name in names:
            if shapes[name] != cur.shapes[name]:
                self._drop(f'{name} size changed', cur)
                log.warning('%s is %s, the episode started at %s; step dropped', name,
                            shapes[name], cur.shapes[name])
                return False
        step = dict(values)
        self._writer.submit(lambda: self._write_step(cur, step, now))
        return True

    def _open_writer(self, cur: _Current, image: Any, extra: Mapping[str, Any]) -> EpisodeWriter:
        """The episode file of ``cur``, shaped by its first step."""
        return EpisodeWriter(
            cur.path, joint_names=self.joint_names, action_names=self.action_names,
            image_shape=image.shape, fps=self.fps, language_command=cur.language_command,
            robot=self.robot, cameras=self.cameras,
            camera_shapes={c: v.shape for c, v in extra.items()},
            flush_every=max(1, int(round(self.fps))), min_free_bytes=self.min_free_bytes,
            ee_action_names=self.ee_action_names or None)

    def _write_step(self, cur: _Current, values: Mapping[str, Any], now: float) -> None:
        """Background mode, in the writer thread: append one step to ``cur``'s file."""
        if cur.failed:
            return
        image = values[IMAGE]
        extra = {c: values[f'{IMAGE}_{c}'] for c in self.cameras}
        positions, velocities = values[JOINT_STATES]
        try:
            if cur.writer is None:
                cur.writer = self._open_writer(cur, image, extra)
            cur.writer.append(image, positions, velocities, values[ACTION], timestamp=now,
                              extra_images=extra, action_ee=values.get(ACTION_EE))
        except (EpisodeWriteError, FileExistsError, OSError) as exc:
            if cur.writer is not None:
                cur.writer.abort()
            cur.failure, cur.failed = exc, str(exc)
            log.error('episode %s aborted: %s', cur.path.name, exc)
            return
        except ValueError as exc:
            self._drop('invalid step', cur)
            log.warning('step dropped: %s', exc)
            return
        with self._lock:
            cur.steps += 1
            self.steps_recorded += 1

    # -- reporting ----------------------------------------------------------------------------
    def status(self, now: float) -> dict:
        """State, counts and stream ages, for /diagnostics and the status topic."""
        cur = self.current
        total = self.steps_recorded + self.steps_dropped
        if cur is not None and cur.failed and not self.last_error:
            self.last_error = cur.failed
        return {
            'state': 'recording' if cur else 'idle',
            'episode': cur.path.name if cur else None,
            'language_command': cur.language_command if cur else None,
            'steps': cur.steps if cur else 0,
            'dropped': cur.dropped if cur else 0,
            'episode_seconds': round(now - cur.started, 3) if cur else 0.0,
            'episodes_saved': self.episodes_saved,
            'episodes_discarded': self.episodes_discarded,
            'steps_recorded_total': self.steps_recorded,
            'steps_dropped_total': self.steps_dropped,
            'drop_ratio': round(self.steps_dropped / total, 6) if total else 0.0,
            'drop_reasons': dict(self.drop_reasons),
            'stream_age_s': {n: (None if s.age(now) is None else round(s.age(now), 3))
                             for n, s in self.streams.items()},
            'stale_drops': {n: s.stale_drops for n, s in self.streams.items()},
            'output_dir': str(self.output_dir),
            'last_error': self.last_error,
            'last_episode': self.last_episode.as_dict() if self.last_episode else None,
        }
