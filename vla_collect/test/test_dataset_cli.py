"""`vla dataset` on real episode files: info, validate, stats, view, split, recover."""
from __future__ import annotations

import json

import h5py
import imageio.v2 as imageio
import numpy as np
from collect_test_helpers import ACTIONS, IMAGE_SHAPE, JOINTS, frame

from vla_collect.dataset_cli import main
from vla_collect.episode_io import EpisodeWriter, list_episodes, validate_episode


def test_info_reports_counts_success_and_commands(episode_dir, capsys):
    assert main(['info', str(episode_dir)]) == 0
    out = capsys.readouterr().out
    assert '3 episodes, 18 steps' in out and 'success: 2/3 (67%)' in out
    assert 'images 32x24, 3 joints, 4 actions' in out
    assert 'pick red' in out and 'pick green' in out


def test_validate_exits_1_and_names_each_bad_file(episode_dir, capsys):
    assert main(['validate', str(episode_dir)]) == 0
    bad = list_episodes(episode_dir)[1]
    with h5py.File(bad, 'r+') as f:
        f['actions'][2, 0] = np.nan
    interrupted = EpisodeWriter(episode_dir / 'episode_000003.hdf5', joint_names=JOINTS,
                                action_names=ACTIONS, image_shape=IMAGE_SHAPE)
    interrupted.append(frame(0), [0] * 3, [0] * 3, [0] * 4, timestamp=0.0)
    interrupted.flush()
    assert main(['validate', str(episode_dir)]) == 1
    out = capsys.readouterr().out
    assert f'{bad}: non-finite value (NaN/inf) in /actions at step 2 (shoulder)' in out
    assert 'episode_000003.hdf5.tmp: an interrupted recording' in out
    assert str(list_episodes(episode_dir)[0]) not in out
    interrupted.abort()


def test_stats_json(episode_dir, tmp_path, capsys):
    out = tmp_path / 'stats.json'
    assert main(['stats', str(episode_dir), '--json', str(out)]) == 0
    stats = json.loads(out.read_text())
    assert stats['episodes'] == 3 and stats['steps'] == 18
    assert stats['actions']['names'] == ACTIONS
    assert stats['actions']['max'][3] == np.float32(0.04)
    assert stats['joint_positions']['std'][1] < 1e-6  # a constant joint


def test_view_writes_a_gif_with_frames_and_traces(episode_dir, tmp_path):
    out = tmp_path / 'ep.gif'
    assert main(['view', str(list_episodes(episode_dir)[2]), '--out', str(out)]) == 0
    frames = imageio.mimread(out)
    assert len(frames) == 7
    assert frames[0].shape[1] == 64 and frames[0].shape[0] > 48  # 2x image above the plot
    assert main(['view', str(list_episodes(episode_dir)[2]), '--out', str(tmp_path / 'x.avi')]) == 1
    slow = tmp_path / 'slow.gif'
    assert main(['view', str(list_episodes(episode_dir)[2]), '--out', str(slow), '--fps', '10']) == 0
    from PIL import Image
    with Image.open(slow) as gif:
        assert gif.info['duration'] == 100  # ms per frame at 10 fps


def test_view_writes_an_mp4_through_pyav(episode_dir, tmp_path):
    import av
    out = tmp_path / 'ep.mp4'
    assert main(['view', str(list_episodes(episode_dir)[2]), '--out', str(out), '--fps', '10']) == 0
    with av.open(str(out)) as video:
        stream = video.streams.video[0]
        frames = [f.to_ndarray(format='rgb24') for f in video.decode(stream)]
        assert stream.codec_context.name == 'h264' and float(stream.average_rate) == 10
    assert len(frames) == 7 and frames[0].shape[1] == 64 and frames[0].shape[0] > 48
    assert not list(tmp_path.glob('.ep.mp4.*'))  # no temporary file left


def test_view_shows_every_camera_side_by_side(tmp_path):
    path = tmp_path / 'episode_000000.hdf5'
    wrist = np.full((12, 16, 3), 250, np.uint8)  # another size: fitted to the main image
    with EpisodeWriter(path, joint_names=JOINTS, action_names=ACTIONS, image_shape=IMAGE_SHAPE,
                       cameras=['wrist'], camera_shapes={'wrist': wrist.shape}) as writer:
        for t in range(3):
            writer.append(frame(t), [0] * 3, [0] * 3, [0] * 4, timestamp=t / 30,
                          extra_images={'wrist': wrist})
        writer.close(success=True)
    assert main(['view', str(path), '--out', str(tmp_path / 'two.gif'), '--scale', '1']) == 0
    first = imageio.mimread(tmp_path / 'two.gif')[0]
    h, w = IMAGE_SHAPE[:2]
    assert first.shape[1] == 2 * w
    assert (first[:h, w:, :3] > 240).all()  # the wrist view fills the right half


def test_split_by_episode_stratified_by_command(tmp_path, episode_dir):
    out = tmp_path / 'split.json'
    assert main(['split', str(episode_dir), '--val', '0.5', '--out', str(out)]) == 0
    split = json.loads(out.read_text())
    assert sorted(split['train'] + split['val']) == [p.name for p in list_episodes(episode_dir)]
    assert len(split['val']) == 1  # 'pick red' has 2 episodes, 'pick green' only one
    assert main(['split', str(tmp_path / 'missing')]) == 1


def test_recover_salvages_interrupted_files(tmp_path, capsys):
    writer = EpisodeWriter(tmp_path / 'episode_000000.hdf5', joint_names=JOINTS,
                           action_names=ACTIONS, image_shape=IMAGE_SHAPE, flush_every=2)
    for i in range(4):
        writer.append(frame(i), [0] * 3, [0] * 3, [0] * 4, timestamp=float(i))
    writer.flush()  # as a crash after the last flush leaves it
    assert main(['recover', str(tmp_path)]) == 0
    assert '4 steps, success=False' in capsys.readouterr().out
    assert validate_episode(tmp_path / 'episode_000000.hdf5') == []
