"""HDF5 episodes: round trip, numbering, crash safety, recovery and validation on real files."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from collect_test_helpers import ACTIONS, IMAGE_SHAPE, JOINTS, frame, write_episode

from vla_collect.episode_io import (
    SCHEMA_VERSION, EpisodeFormatError, EpisodeWriteError, EpisodeWriter, list_episodes,
    list_interrupted, load_valid_episodes, next_episode_path, open_episode, recover_episode,
    temp_path_for, validate_episode)


def test_round_trip_any_dimensions_and_extra_camera(tmp_path):
    path = tmp_path / 'episode_000007.hdf5'
    wrist = np.full((8, 10, 3), 200, np.uint8)
    with EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE,
                       fps=15.0, language_command='stack the cubes', robot='my_arm',
                       cameras=['wrist'], camera_shapes={'wrist': (8, 10, 3)}) as writer:
        assert writer.temp_path.exists() and not path.exists()
        for i in range(40):
            writer.append(frame(i), [i, i + 1, i + 2], [0.5, 0.5, 0.5], [i, 0, 0, 0.08],
                          timestamp=100.0 + i / 15.0, extra_images={'wrist': wrist})
        assert writer.close(success=True) == path
    assert path.exists() and not temp_path_for(path).exists()
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert len(ep) == 40
        assert ep.language_command == 'stack the cubes' and ep.success is True
        assert ep.fps == 15.0 and ep.episode_id == 7
        assert ep.joint_names == JOINTS and ep.action_names == ACTIONS
        assert ep.attrs['schema_version'] == SCHEMA_VERSION and ep.attrs['robot'] == 'my_arm'
        assert ep.attrs['duration'] == 40 and ep.attrs['cameras'] == ['wrist']
        assert 'T' in ep.attrs['created']
        assert ep.images.shape == (40, *IMAGE_SHAPE) and ep.images.dtype == np.uint8
        assert ep.images.chunks == (1, *IMAGE_SHAPE) and ep.images.compression == 'gzip'
        np.testing.assert_array_equal(ep.images[13], frame(13))
        np.testing.assert_array_equal(ep.camera_images('wrist')[39], wrist)
        np.testing.assert_allclose(ep.joint_positions[:, 0], np.arange(40))
        assert ep.joint_velocities.shape == (40, 3) and ep.actions.shape == (40, 4)
        assert ep.actions.dtype == np.float32 and ep.timestamps.dtype == np.float64
        np.testing.assert_allclose(ep.timestamps[:2], [100.0, 100.0 + 1 / 15.0])
    # plain h5py reads the DESIGN.md layout directly
    with h5py.File(path, 'r') as f:
        assert set(f['observations']) == {'images', 'images_wrist', 'joint_positions',
                                          'joint_velocities'}


def test_bad_steps_are_refused_and_the_episode_goes_on(tmp_path):
    path = tmp_path / 'episode_000000.hdf5'
    with EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS,
                       image_shape=IMAGE_SHAPE) as writer:
        writer.append(frame(0), [0, 0, 0], [0, 0, 0], [0, 0, 0, 0], timestamp=1.0)
        with pytest.raises(ValueError, match='joint_positions has 2 values, expected 3'):
            writer.append(frame(1), [0, 0], [0, 0, 0], [0, 0, 0, 0], timestamp=2.0)
        with pytest.raises(ValueError, match='action has non-finite'):
            writer.append(frame(1), [0, 0, 0], [0, 0, 0], [0, np.nan, 0, 0], timestamp=2.0)
        with pytest.raises(ValueError, match='does not increase'):
            writer.append(frame(1), [0, 0, 0], [0, 0, 0], [0, 0, 0, 0], timestamp=1.0)
        with pytest.raises(ValueError, match=r'uint8 array of shape \(24, 32, 3\)'):
            writer.append(np.zeros((24, 32, 4), np.uint8), [0] * 3, [0] * 3, [0] * 4, timestamp=2.0)
        writer.append(frame(1), [0, 0, 0], [0, 0, 0], [0, 0, 0, 0], timestamp=2.0)
        writer.close(success=False)
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert len(ep) == 2 and ep.success is False


@pytest.mark.parametrize('kwargs, match', [
    ({'joint_names': []}, 'joint_names must name at least one'),
    ({'action_names': ['a', 'a']}, 'repeated names'),
    ({'image_shape': (10, 10)}, r'image_shape must be \(height, width, 3\)'),
    ({'fps': 0}, 'fps must be a positive number'),
    ({'cameras': ['front view']}, 'cameras must be distinct names'),
])
def test_writer_arguments_are_checked(tmp_path, kwargs, match):
    args = dict(joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE) | kwargs
    with pytest.raises(ValueError, match=match):
        EpisodeWriter(tmp_path / 'episode_000000.hdf5', **args)
    assert list(tmp_path.iterdir()) == []


def test_abort_and_exceptions_leave_nothing(tmp_path):
    path = tmp_path / 'episode_000000.hdf5'
    writer = EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE)
    writer.append(frame(0), [0] * 3, [0] * 3, [0] * 4, timestamp=0.0)
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyError):
        with EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE):
            raise KeyError('operator pressed discard')
    assert list(tmp_path.iterdir()) == []
    writer = EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE)
    with pytest.raises(ValueError, match='no steps'):
        writer.close(success=True)
    assert list(tmp_path.iterdir()) == []


def test_numbering_resumes_and_never_overwrites(tmp_path):
    assert next_episode_path(tmp_path / 'new') == tmp_path / 'new' / 'episode_000000.hdf5'
    write_episode(tmp_path / 'episode_000000.hdf5')
    write_episode(tmp_path / 'episode_000004.hdf5')
    (tmp_path / 'notes.txt').write_text('not an episode')
    assert next_episode_path(tmp_path).name == 'episode_000005.hdf5'
    temp_path_for(tmp_path / 'episode_000009.hdf5').write_bytes(b'interrupted')
    assert next_episode_path(tmp_path).name == 'episode_000010.hdf5'
    assert [p.name for p in list_episodes(tmp_path)] == ['episode_000000.hdf5', 'episode_000004.hdf5']
    assert [p.name for p in list_interrupted(tmp_path)] == ['episode_000009.hdf5.tmp']
    before = (tmp_path / 'episode_000004.hdf5').read_bytes()
    with pytest.raises(FileExistsError, match='never overwritten'):
        write_episode(tmp_path / 'episode_000004.hdf5')
    with pytest.raises(FileExistsError, match='interrupted recording'):
        write_episode(tmp_path / 'episode_000009.hdf5')
    assert (tmp_path / 'episode_000004.hdf5').read_bytes() == before


CRASH_WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {test_dir!r})
    from collect_test_helpers import ACTIONS, IMAGE_SHAPE, JOINTS, frame, write_episode
    from vla_collect.episode_io import EpisodeWriter
    out = Path(sys.argv[1])
    write_episode(out / 'episode_000000.hdf5', steps=8)
    writer = EpisodeWriter(out / 'episode_000001.hdf5', joint_names=JOINTS, action_names=ACTIONS,
                           image_shape=IMAGE_SHAPE, language_command='crash test', flush_every=10)
    i = 0
    while True:
        writer.append(frame(i), [i, 0, 0], [0, 0, 0], [i, 0, 0, 0], timestamp=i * 0.01)
        i += 1
        if i % 10 == 0:
            print(i, flush=True)
        if i >= 45:
            time.sleep(0.001)
''')


def test_killed_writer_leaves_earlier_episodes_valid_and_is_recoverable(tmp_path):
    script = tmp_path / 'crash_writer.py'
    script.write_text(CRASH_WRITER.format(test_dir=str(Path(__file__).parent)))
    out = tmp_path / 'data'
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        flushed = 0
        while flushed < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            flushed = int(line)
        assert flushed >= 40, 'the writer subprocess did not get going'
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # no partial file under a final name; the earlier episode is intact
    assert [p.name for p in list_episodes(out)] == ['episode_000000.hdf5']
    assert validate_episode(out / 'episode_000000.hdf5') == []
    tmp = temp_path_for(out / 'episode_000001.hdf5')
    assert tmp.exists()
    assert 'interrupted recording' in validate_episode(tmp)[0]
    with pytest.raises(EpisodeFormatError, match='interrupted recording'):
        open_episode(tmp)
    with pytest.warns(RuntimeWarning, match='interrupted recording'):
        valid, skipped = load_valid_episodes(out)
    assert [p.name for p in valid] == ['episode_000000.hdf5'] and skipped[0][0] == tmp
    assert next_episode_path(out).name == 'episode_000002.hdf5'

    recovered = recover_episode(tmp)
    assert recovered == out / 'episode_000001.hdf5' and not tmp.exists()
    assert validate_episode(recovered) == []
    with open_episode(recovered) as ep:
        assert len(ep) >= 40  # everything up to the last flush at least
        assert ep.success is False and ep.attrs['recovered'] is True
        assert ep.attrs['complete'] is False and ep.language_command == 'crash test'
        np.testing.assert_allclose(ep.joint_positions[:, 0], np.arange(len(ep)))
        np.testing.assert_array_equal(ep.images[len(ep) - 1], frame(len(ep) - 1))


def test_recover_refuses_what_it_cannot_salvage(tmp_path):
    junk = tmp_path / 'episode_000003.hdf5.tmp'
    junk.write_bytes(b'\x00' * 100)
    with pytest.raises(EpisodeFormatError, match='episode_000003.hdf5.tmp'):
        recover_episode(junk)
    path = tmp_path / 'episode_000004.hdf5'
    EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE).flush()
    with pytest.raises(EpisodeFormatError, match='no complete step'):
        recover_episode(temp_path_for(path))
    with pytest.raises(ValueError, match='not a temporary episode file'):
        recover_episode(path)


def _break(path: Path, how: str) -> None:
    if how == 'truncated':
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        return
    if how == 'garbage':
        path.write_bytes(b'this is not hdf5' * 100)
        return
    with h5py.File(path, 'r+') as f:
        if how == 'missing dataset':
            del f['actions']
        elif how == 'nan':
            f['observations/joint_positions'][3, 1] = np.nan
        elif how == 'timestamps':
            f['timestamps'][4] = f['timestamps'][2]
        elif how == 'dimensions':
            f.attrs['joint_names'] = ['a', 'b']
        elif how == 'length':
            f['actions'].resize(3, axis=0)
        elif how == 'no schema':
            del f.attrs['schema_version']


@pytest.mark.parametrize('how, expected', [
    ('truncated', 'truncated or corrupt'),
    ('garbage', 'not a readable HDF5 file'),
    ('missing dataset', 'missing dataset(s) [\'/actions\']'),
    ('nan', 'non-finite value (NaN/inf) in /observations/joint_positions at step 3 (elbow)'),
    ('timestamps', 'timestamps not strictly increasing at step 4 (0.100000 then 0.066667)'),
    ('dimensions', "/observations/joint_positions has 3 columns but attrs[\"joint_names\"] names 2"),
    ('length', 'datasets differ in length'),
    ('no schema', 'no schema_version attribute'),
])
def test_validator_names_what_is_wrong(episode_dir, how, expected):
    path = list_episodes(episode_dir)[2]  # 7 steps
    _break(path, how)
    problems = validate_episode(path)
    assert problems and any(expected in p for p in problems), problems
    if how in ('truncated', 'garbage', 'missing dataset', 'dimensions', 'no schema'):
        with pytest.raises(EpisodeFormatError, match=path.name):
            open_episode(path)
    with pytest.warns(RuntimeWarning, match=path.name):
        valid, skipped = load_valid_episodes(episode_dir)
    assert len(valid) == 2 and [s[0] for s in skipped] == [path]


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write into a read-only directory')
def test_unwritable_directory_is_a_clear_error(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(EpisodeWriteError, match='cannot create episode .*locked'):
            write_episode(locked / 'episode_000000.hdf5')
    finally:
        locked.chmod(0o700)


def test_directory_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / 'data'
    blocker.write_text('a file where the output directory should be')
    with pytest.raises(EpisodeWriteError, match='cannot create episode .*data/episode_000000'):
        write_episode(blocker / 'episode_000000.hdf5')


def test_disk_running_full_aborts_the_episode_and_keeps_earlier_ones(tmp_path):
    out = tmp_path / 'data'
    write_episode(out / 'episode_000000.hdf5', steps=5)
    stat = os.statvfs(out)
    free = stat.f_bavail * stat.f_frsize
    rng = np.random.default_rng(0)
    writer = EpisodeWriter(out / 'episode_000001.hdf5', joint_names=JOINTS, action_names=ACTIONS,
                           image_shape=IMAGE_SHAPE, min_free_bytes=free - 300_000)
    with pytest.raises(EpisodeWriteError, match=r'MB free on .*free some space.*aborted'):
        for i in range(20_000):  # ~2.3 kB of incompressible image a step
            writer.append(rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8), [0] * 3, [0] * 3,
                          [0] * 4, timestamp=float(i))
    assert not writer.is_open
    assert sorted(p.name for p in out.iterdir()) == ['episode_000000.hdf5']
    assert validate_episode(out / 'episode_000000.hdf5') == []
    with pytest.raises(EpisodeWriteError, match='MB free'):
        EpisodeWriter(out / 'episode_000002.hdf5', joint_names=JOINTS, action_names=ACTIONS,
                      min_free_bytes=2**62)


HARD_WRITE_FAILURE = textwrap.dedent('''
    import resource, signal, sys
    from pathlib import Path
    sys.path.insert(0, {test_dir!r})
    from collect_test_helpers import write_episode
    from vla_collect.episode_io import EpisodeWriteError
    out = Path(sys.argv[1])
    write_episode(out / 'episode_000000.hdf5', steps=5)
    # a file-size limit makes writes fail with EFBIG as a full disk fails them with ENOSPC
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    try:
        write_episode(out / 'episode_000001.hdf5', steps=100_000, min_free_bytes=0)
    except EpisodeWriteError as exc:
        print('ABORTED', exc, flush=True)
''')


def test_failed_write_aborts_the_episode_and_keeps_earlier_ones(tmp_path):
    """The last resort behind the free-space check: a write the OS refuses.

    HDF5 (2.0) cannot close a file after a failed write and may crash when the interpreter
    exits, so only the files and the error are checked here, not the exit status.
    """
    script = tmp_path / 'hard_failure.py'
    script.write_text(HARD_WRITE_FAILURE.format(test_dir=str(Path(__file__).parent)))
    out = tmp_path / 'data'
    run = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True,
                         timeout=120)
    assert 'ABORTED writing step' in run.stdout, run.stdout + run.stderr[-2000:]
    assert 'episode_000001.hdf5.tmp' in run.stdout and 'File too large' in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ['episode_000000.hdf5']
    assert validate_episode(out / 'episode_000000.hdf5') == []


def test_validate_copy_of_valid_file_and_missing_file(episode_dir, tmp_path):
    copy = tmp_path / 'copy.hdf5'
    shutil.copy(list_episodes(episode_dir)[0], copy)
    assert validate_episode(copy) == []
    assert 'no such episode file' in validate_episode(tmp_path / 'nope.hdf5')[0]


def test_frames_are_stored_as_standard_gzip_chunks_any_hdf5_reader_opens(tmp_path):
    """The writer deflates each frame itself (one frame = one chunk); the file must still be a
    plain gzip-filtered dataset that h5py (and the trainer) decode with the standard filter."""
    import h5py as _h5py
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / 'episode_000000.hdf5'
    writer = EpisodeWriter(path, joint_names=['j1'], action_names=['j1'], image_shape=(16, 16, 3),
                           cameras=['wrist'])
    for i, frame in enumerate(frames):
        writer.append(frame, [0.0], [0.0], [0.0], timestamp=i / 30, extra_images={'wrist': frame[::-1]})
    writer.close(success=True)
    with _h5py.File(path, 'r') as f:
        for name, expected in (('observations/images', frames),
                               ('observations/images_wrist', [x[::-1] for x in frames])):
            ds = f[name]
            assert ds.compression == 'gzip' and ds.chunks == (1, 16, 16, 3)
            np.testing.assert_array_equal(ds[:], np.stack(expected))
