"""Episodes -> LeRobotDataset v3.0 -> episodes, on episodes written by the real EpisodeWriter."""
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('pyarrow', reason='pyarrow is in requirements.txt')
pytest.importorskip('av', reason='av (PyAV) is in requirements.txt')

import pyarrow.parquet as pq  # noqa: E402

from vla_collect.dataset_cli import main as dataset_main  # noqa: E402
from vla_collect.episode_io import EpisodeWriter, list_episodes, open_episode, validate_episode  # noqa: E402
from vla_collect.lerobot_export import export_lerobot  # noqa: E402
from vla_collect.lerobot_import import import_lerobot  # noqa: E402
from vla_collect.lerobot_meta import LeRobotFormatError  # noqa: E402
from vla_collect.lerobot_video import VideoSettings, psnr  # noqa: E402

JOINTS = ['joint1', 'joint2', 'joint3', 'gripper']
ACTIONS = ['joint1', 'joint2', 'joint3', 'gripper_cmd']
SIZE = 32
STEPS = 20
#: what H.264 (yuv420p, crf 18) keeps of these 32 px test frames; 224 px simulator frames keep
#: >= 35 dB (benchmarks/bench_dataset_convert.py measures it)
PSNR_BOUND = 26.0


def scene(i: int, camera: int) -> np.ndarray:
    """A smooth background with a moving block: what a camera sees, not noise."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[..., 0] = (x * 6 + i * 3) % 256
    img[..., 1] = (y * 5 + camera * 40) % 256
    img[..., 2] = 128
    img[8 + i % 10:16 + i % 10, 10:18] = (220, 30, 30)
    return img


@pytest.fixture
def episodes(tmp_path):
    """Two episodes x 20 steps, a front and a wrist camera, one failed, distinct instructions;
    the second has a gap in its time stamps (a dropped step)."""
    src = tmp_path / 'episodes'
    rng = np.random.default_rng(0)
    for e in range(2):
        with EpisodeWriter(src / f'episode_{e:06d}.hdf5', joint_names=JOINTS, action_names=ACTIONS,
                           image_shape=(SIZE, SIZE, 3), cameras=['wrist'], fps=30.0,
                           language_command=['pick up the red cube', 'open the drawer'][e],
                           robot='test_arm') as writer:
            for i in range(STEPS):
                t = 100.0 + (i + (i >= 10 and e == 1)) / 30.0
                writer.append(scene(i, 0), rng.normal(size=4), rng.normal(size=4),
                              rng.normal(size=4), t, extra_images={'wrist': scene(i, 1)})
            writer.close(success=e == 0)
    return src


def assert_round_trip(src: Path, back: Path, lossless: bool) -> list[float]:
    values = []
    originals, copies = list_episodes(src), list_episodes(back)
    assert len(copies) == len(originals) == 2
    for a, b in zip(originals, copies):
        assert validate_episode(b) == []
        with open_episode(a) as x, open_episode(b) as y:
            for key in ('observations/joint_positions', 'observations/joint_velocities', 'actions',
                        'timestamps'):
                np.testing.assert_array_equal(x.file[key][:], y.file[key][:], err_msg=key)
                assert x.file[key].dtype == y.file[key].dtype
            assert (y.joint_names, y.action_names, y.fps) == (JOINTS, ACTIONS, 30.0)
            assert y.language_command == x.language_command and y.success == x.success
            assert y.cameras == ['wrist'] and y.images.shape == x.images.shape
            for key in ('observations/images', 'observations/images_wrist'):
                for i in range(len(x)):
                    if lossless:
                        np.testing.assert_array_equal(x.file[key][i], y.file[key][i])
                    else:
                        values.append(psnr(x.file[key][i], y.file[key][i]))
    return values


def test_video_export_and_import_round_trip(episodes, tmp_path):
    out = tmp_path / 'lerobot'
    report = export_lerobot(episodes, out, VideoSettings('h264'), progress=False)
    assert report['frames'] == 2 * STEPS and [e['steps'] for e in report['episodes']] == [STEPS, STEPS]
    assert [e['episode_index'] for e in report['off_grid_episodes']] == [1]
    assert not list(tmp_path.glob('lerobot.tmp-*'))
    info = json.loads((out / 'meta/info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 30 and info['total_frames'] == 40
    assert info['features']['observation.state']['names'] == JOINTS
    assert info['features']['action']['names'] == ACTIONS
    assert info['features']['observation.images.front']['dtype'] == 'video'
    assert info['features']['observation.images.wrist']['info']['video.codec'] == 'h264'
    for key in ('observation.images.front', 'observation.images.wrist'):
        assert (out / f'videos/{key}/chunk-000/file-000.mp4').is_file()
    data = pq.read_table(out / 'data/chunk-000/file-000.parquet')
    assert data.column('index').to_pylist() == list(range(40))
    np.testing.assert_allclose(data.column('timestamp').to_numpy()[:STEPS], np.arange(STEPS) / 30, atol=1e-6)
    assert data.column('next.success').to_pylist()[:STEPS] == [False] * (STEPS - 1) + [True]
    tasks = pq.read_table(out / 'meta/tasks.parquet').to_pydict()
    assert tasks['__index_level_0__'] == ['pick up the red cube', 'open the drawer']
    episodes_table = pq.read_table(out / 'meta/episodes/chunk-000/file-000.parquet').to_pydict()
    assert episodes_table['videos/observation.images.front/from_timestamp'] == [0.0, STEPS / 30]
    assert episodes_table['success'] == [True, False]
    stats = json.loads((out / 'meta/stats.json').read_text())
    assert stats['observation.images.front']['mean'][0][0][0] > 0 and stats['action']['count'] == [40]

    report = import_lerobot(out, tmp_path / 'back', progress=False)
    assert not report['failed'] and report['dropped_features'] == []
    values = assert_round_trip(episodes, tmp_path / 'back', lossless=False)
    assert min(values) > PSNR_BOUND, min(values)


def test_png_images_round_trip_pixel_for_pixel_through_the_cli(episodes, tmp_path, capsys):
    out = tmp_path / 'lerobot'
    assert dataset_main(['export', '--format', 'lerobot', str(episodes), str(out),
                         '--video-codec', 'png', '--quiet']) == 0
    info = json.loads((out / 'meta/info.json').read_text())
    assert info['features']['observation.images.wrist']['dtype'] == 'image'
    assert info['video_path'] is None and not (out / 'videos').exists()
    assert dataset_main(['import', '--format', 'lerobot', str(out), str(tmp_path / 'back'),
                         '--quiet']) == 0
    assert '2 episode(s) written' in capsys.readouterr().out
    assert_round_trip(episodes, tmp_path / 'back', lossless=True)
    report = json.loads((tmp_path / 'back' / 'import_report.json').read_text())
    assert report['episodes'][1]['success_source'] == 'episodes table'
    assert dataset_main(['validate', str(tmp_path / 'back')]) == 0
    # the output exists now: a second export is refused, nothing is merged
    assert dataset_main(['export', '--format', 'lerobot', str(episodes), str(out), '--quiet']) == 1
    assert 'already exists' in capsys.readouterr().err


def _edit_info(root: Path, change) -> None:
    info = json.loads((root / 'meta/info.json').read_text())
    change(info)
    (root / 'meta/info.json').write_text(json.dumps(info))


def test_bad_datasets_are_clear_errors_naming_the_file_or_feature(episodes, tmp_path, capsys):
    good = tmp_path / 'lerobot'
    export_lerobot(episodes, good, VideoSettings('png'), progress=False)
    out = tmp_path / 'out'

    def copy(name):
        import shutil
        target = tmp_path / name
        shutil.copytree(good, target)
        return target

    unknown_type = copy('unknown_type')
    _edit_info(unknown_type, lambda i: i['features'].update(
        {'observation.pointcloud': {'dtype': 'pcd', 'shape': [100, 3], 'names': None}}))
    with pytest.raises(LeRobotFormatError, match=r"feature 'observation.pointcloud' has dtype 'pcd'"):
        import_lerobot(unknown_type, out, progress=False)

    unmapped = copy('unmapped')
    _edit_info(unmapped, lambda i: i['features'].update(
        {'observation.effort': {'dtype': 'float32', 'shape': [4], 'names': None}}))
    with pytest.raises(LeRobotFormatError, match=r"'observation.effort' .* has no place .* --drop"):
        import_lerobot(unmapped, out, progress=False)

    no_action = copy('no_action')
    _edit_info(no_action, lambda i: i['features'].pop('action'))
    with pytest.raises(LeRobotFormatError, match=r"no 'action' feature"):
        import_lerobot(no_action, out, progress=False)

    no_info = copy('no_info')
    (no_info / 'meta/info.json').unlink()
    assert dataset_main(['import', '--format', 'lerobot', str(no_info), str(out), '--quiet']) == 1
    assert f'{no_info / "meta/info.json"}: missing' in capsys.readouterr().err

    old = copy('old')
    _edit_info(old, lambda i: i.update(codebase_version='v2.1'))
    with pytest.raises(LeRobotFormatError, match='convert_dataset_v21_to_v30'):
        import_lerobot(old, out, progress=False)

    truncated = copy('truncated')
    data = truncated / 'data/chunk-000/file-000.parquet'
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    report = import_lerobot(truncated, out, progress=False)
    assert len(report['failed']) == 2 and not report['episodes']
    assert 'file-000.parquet: not a readable parquet file' in report['failed'][0]['error']
    assert list_episodes(out) == [] and not list(out.glob('*.tmp'))


def test_a_dataset_from_elsewhere_without_our_extras(episodes, tmp_path):
    """LeRobot datasets recorded elsewhere have no velocity, source time stamps or success flag,
    and may name their dimensions as {"motors": [...]}: defaults, reported."""
    root = tmp_path / 'lerobot'
    export_lerobot(episodes, root, VideoSettings('png'), progress=False)

    def strip(info):
        for key in ('observation.velocity', 'source_timestamp', 'next.success'):
            info['features'].pop(key)
        info['features']['observation.state']['names'] = {'motors': JOINTS}
        info['features']['next.reward'] = {'dtype': 'float32', 'shape': [1], 'names': None}
    _edit_info(root, strip)
    (root / 'meta/vla_ros2.json').unlink()
    table = root / 'meta/episodes/chunk-000/file-000.parquet'
    pq.write_table(pq.read_table(table).drop_columns(['success']), table)
    report = import_lerobot(root, tmp_path / 'back', main_camera='wrist', progress=False)
    assert report['features']['joint_velocities'].startswith('absent')
    assert report['dropped_features'] == ['next.reward']
    for a, b in zip(list_episodes(episodes), list_episodes(tmp_path / 'back')):
        assert validate_episode(b) == []
        with open_episode(a) as x, open_episode(b) as y:
            assert y.joint_names == JOINTS and y.success and y.attrs['success_source'] == 'assumed'
            assert not y.file['observations/joint_velocities'][:].any()
            np.testing.assert_allclose(y.file['timestamps'][:], np.arange(STEPS) / 30, atol=1e-6)
            np.testing.assert_array_equal(y.file['observations/images'][:],
                                          x.file['observations/images_wrist'][:])
            assert y.cameras == ['front']


def test_truncated_video_fails_the_episode_and_leaves_no_file(episodes, tmp_path):
    out = tmp_path / 'lerobot'
    export_lerobot(episodes, out, VideoSettings('h264'), progress=False)
    video = out / 'videos/observation.images.wrist/chunk-000/file-000.mp4'
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    report = import_lerobot(out, tmp_path / 'back', progress=False)
    assert report['failed'] and 'file-000.mp4' in report['failed'][0]['error']
    assert len(list_episodes(tmp_path / 'back')) == len(report['episodes'])
    assert not list((tmp_path / 'back').glob('*.tmp'))


@functools.lru_cache(maxsize=1)
def _lerobot_python() -> str | None:
    """A Python that imports lerobot: this one, or $LEROBOT_PYTHON (a separate check venv, see
    benchmarks/check_lerobot_load.py), or /tmp/lerobot_venv."""
    try:
        import lerobot  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    for candidate in (os.environ.get('LEROBOT_PYTHON'), '/tmp/lerobot_venv/bin/python'):
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, '-c', 'import lerobot.datasets.lerobot_dataset'],
                                   capture_output=True, timeout=300)
            if probe.returncode == 0:
                return candidate
    return None


@pytest.mark.slow
@pytest.mark.timeout(900)  # importing torch + lerobot in a second venv takes minutes on 2 busy cores
@pytest.mark.parametrize('codec', ['h264', 'png'])
def test_lerobot_loads_the_exported_dataset(episodes, tmp_path, codec):
    python = _lerobot_python()
    if python is None:
        pytest.skip('the lerobot package is not importable (the extra: pip install '
                    '"./vla_collect[lerobot]" in a venv of its own, or make the check venv with '
                    'benchmarks/check_lerobot_load.py and set LEROBOT_PYTHON)')
    out = tmp_path / 'lerobot'
    export_lerobot(episodes, out, VideoSettings(codec), progress=False)
    script = Path(__file__).resolve().parents[2] / 'benchmarks' / 'check_lerobot_load.py'
    result = subprocess.run([python, str(script), '--load', str(out), '--json'], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen['frames'] == 2 * STEPS and seen['episodes'] == 2
    assert seen['tasks'] == ['pick up the red cube', 'open the drawer']
    assert seen['names']['observation.state'] == JOINTS
    assert seen['shapes']['observation.images.front'] == [3, SIZE, SIZE]
    with open_episode(list_episodes(episodes)[1]) as ep:
        np.testing.assert_allclose(seen['last_action'], ep.actions[-1], rtol=1e-6)
        front = ep.images[-1].astype(np.float64)
    last_front = np.asarray(seen['last_front']) * 255.0  # (C, H, W) in [0, 1]
    restored = last_front.transpose(1, 2, 0)
    if codec == 'png':
        np.testing.assert_allclose(restored, front, atol=0.5)
    else:
        assert psnr(np.round(restored).astype(np.uint8), front.astype(np.uint8)) > PSNR_BOUND
