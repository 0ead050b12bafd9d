"""Atomic writes: the target holds the old content or the new, never a partial file or a
leftover temporary."""
import json
import os
import stat

import pytest

from vla_common.files import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_text_bytes_and_json_land_under_the_final_name_only(tmp_path):
    target = tmp_path / 'deep' / 'dir' / 'out.json'
    assert atomic_write_json(target, {'a': [1, 2]}) == target
    assert target.read_text() == json.dumps({'a': [1, 2]}, indent=2)
    atomic_write_json(target, {'b': 1}, indent=None)  # replaces
    assert json.loads(target.read_text()) == {'b': 1} and '\n' not in target.read_text()
    atomic_write_text(tmp_path / 'note.md', 'héllo\n')
    assert (tmp_path / 'note.md').read_text(encoding='utf-8') == 'héllo\n'
    atomic_write_bytes(tmp_path / 'blob.bin', b'\x00\x01')
    assert (tmp_path / 'blob.bin').read_bytes() == b'\x00\x01'
    assert sorted(p.name for p in tmp_path.rglob('*') if p.is_file()) == ['blob.bin', 'note.md', 'out.json']


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'results.json'
    atomic_write_json(target, {'old': True})
    with pytest.raises(TypeError):
        atomic_write_json(target, {'bad': object()})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"half": ')
            raise RuntimeError('writer crashed')
    assert json.loads(target.read_text()) == {'old': True}
    assert [p.name for p in tmp_path.iterdir()] == ['results.json']


def test_atomic_path_keeps_the_suffix_and_gives_readable_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / 'clip.gif') as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == '.gif' and tmp.name.startswith('.clip.gif.')
            tmp.write_bytes(b'GIF89a')
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / 'clip.gif').stat().st_mode)
    assert mode == 0o644, oct(mode)


@pytest.mark.parametrize('fps, delay_ms', [(10.0, 100), (30.0, 30), (15.0, 70), (1000.0, 20)])
def test_gif_frames_play_at_the_given_rate_when_read_back(tmp_path, fps, delay_ms):
    """Every frame's delay, read back by Pillow and by imageio, is 1/fps in milliseconds
    (to GIF's 10 ms resolution, and at least the 20 ms browsers honour)."""
    import imageio.v3 as iio
    import numpy as np
    from PIL import Image, ImageSequence

    from vla_common.files import gif_frame_ms, write_gif
    assert gif_frame_ms(fps) == delay_ms
    frames = [np.full((8, 8, 3), 40 * i, np.uint8) for i in range(4)]
    path = write_gif(frames, tmp_path / 'videos' / 'a.gif', fps=fps)
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.info['loop'] == 0
        assert [frame.info['duration'] for frame in ImageSequence.Iterator(gif)] == [delay_ms] * 4
    assert iio.immeta(path, index=0)['duration'] == delay_ms
    assert [p.name for p in (tmp_path / 'videos').iterdir()] == ['a.gif']  # no temporary left


def test_gif_rate_must_be_positive():
    from vla_common.files import gif_frame_ms
    for fps in (0.0, -1.0, float('nan')):
        with pytest.raises(ValueError):
            gif_frame_ms(fps)
