import numpy as np

from vla_control.inputs import InputCache

IMAGE = np.zeros((4, 6, 3), np.uint8)


def test_a_snapshot_holds_the_newest_inputs_and_hands_a_command_change_to_one_tick():
    cache = InputCache('  pick  ', now=1.0)
    first = cache.take(1.1)
    assert first.instruction == 'pick' and first.command_time == 1.0 and first.command_changed
    assert first.image is None and first.q is None and first.estop == ''
    assert not cache.take(1.2).command_changed
    cache.put_image(IMAGE, 1.3)
    cache.put_image(IMAGE + 1, 1.35, camera='wrist')
    cache.put_joint_state(np.ones(2), np.zeros(2), 1.4)
    snap = cache.take(1.5, stamp=1.4, halt='inactive')
    assert snap.image is IMAGE and snap.image_time == 1.3 and snap.stamp == 1.4
    assert snap.extra_images['wrist'][1] == 1.35 and snap.state_time == 1.4
    assert snap.error == 'inactive'
    cache.drop_extra_images()
    assert cache.take(1.6).extra_images == {}


def test_every_command_starts_over_and_an_estop_release_too():
    cache = InputCache()
    assert not cache.put_command('  ', 1.0)  # nothing to clear
    assert cache.take(1.0).command_time is None
    assert cache.put_command('pick', 2.0) and cache.put_command('pick', 3.0)
    snap = cache.take(3.1)
    assert snap.command_changed and snap.command_time == 3.0
    cache.put_estop('joint limit', 4.0)
    snap = cache.take(4.1)
    assert snap.estop == 'joint limit' and not snap.command_changed
    cache.put_estop('', 5.0)  # released: settle again as after a new command
    snap = cache.take(5.1)
    assert snap.estop == '' and snap.command_changed and snap.command_time == 5.0
    assert cache.put_command('', 6.0)  # clearing a command is a change
    assert cache.take(6.1).instruction == ''
    cache.restart_command()
    assert not cache.take(6.2).command_changed  # no command to start again


def test_images_decode_to_rgb_and_malformed_ones_name_the_fault():
    from types import SimpleNamespace

    import pytest

    from vla_control.inputs import decode_image

    def msg(encoding='rgb8', height=2, width=3, step=None, data=None):
        step = width * 3 if step is None else step
        data = bytes(range(step * height)) if data is None else data
        return SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data)

    rgb = decode_image(msg())
    assert rgb.shape == (2, 3, 3) and rgb[1, 0].tolist() == [9, 10, 11]
    bgr = decode_image(msg('bgr8'))
    assert bgr[1, 0].tolist() == [11, 10, 9]
    padded = decode_image(msg(step=10, data=bytes(range(20))))  # one padding byte per row
    assert padded[1, 0].tolist() == [10, 11, 12]
    with pytest.raises(ValueError, match='zero size'):
        decode_image(msg(height=0))
    with pytest.raises(ValueError, match='unsupported image encoding'):
        decode_image(msg('yuv422'))
    with pytest.raises(ValueError, match='step 4 is smaller'):
        decode_image(msg(step=4))
