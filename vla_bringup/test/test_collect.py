"""`vla collect` end to end (sim + expert + gate + recorder over ROS) and the teleop scenario."""
from __future__ import annotations

import pytest

from vla_bringup.cli import main
from vla_bringup.collect import plan
from vla_bringup.scenarios import build_scenario
from vla_collect.episode_io import list_episodes, open_episode, validate_episode


def test_teleop_scenario_nodes():
    names = [s.name for s in build_scenario('teleop', {'output_dir': '/tmp/x'})]
    assert names[0] == 'sim_node' and 'joy_teleop' in names and names[-1] == 'teleop_collector'
    assert 'scripted_expert' not in names
    real = [s.name for s in build_scenario('teleop', {'use_sim': 'false'})]
    assert 'sim_node' not in real and 'teleop_collector' in real
    recorder = build_scenario('teleop', {'output_dir': '/data', 'language_command': 'wave'})[-1]
    assert recorder.parameters['output_dir'] == '/data'
    assert recorder.parameters['language_command'] == 'wave'


def test_plan_skips_recorded_pairs():
    assert plan(['a', 'b'], 2, 5, {('a', 6)}) == [('a', 5), ('b', 5), ('b', 6)]


@pytest.mark.ros
def test_collect_records_valid_episodes_with_commands_and_success(tmp_path, capsys):
    out = tmp_path / 'demos'
    assert main(['collect', '--tasks', 'pick_red', '--episodes', '1', '--out', str(out),
                 '--real-time-factor', '2']) == 0
    episodes = list_episodes(out)
    assert len(episodes) == 1
    assert validate_episode(episodes[0]) == []
    with open_episode(episodes[0]) as ep:
        assert ep.language_command == 'pick up the red cube'
        assert ep.attrs['task'] == 'pick_red' and ep.attrs['seed'] == 0
        assert ep.success is True and len(ep) > 30
        # the wrist camera is recorded beside the main image (config/collect.yaml)
        assert ep.cameras == ['wrist'] and ep.camera_images('wrist').shape == ep.images.shape
        with_tail = ep.timestamps[-1] - ep.timestamps[0]  # seconds; dropped steps do not shorten it
    text = capsys.readouterr().out
    assert 'episodes per wall minute' in text and '1 episode(s) saved' in text
    # a second run finds the episode and records nothing new
    assert main(['collect', '--tasks', 'pick_red', '--episodes', '1', '--out', str(out)]) == 0
    assert list_episodes(out) == episodes
    # the recording goes on for --tail (0.5 s = 15 ticks by default) after success, so the
    # demonstration shows the whole motion; --tail 0 stops at the moment of success
    assert main(['collect', '--tasks', 'pick_red', '--episodes', '1', '--out', str(tmp_path / 'no_tail'),
                 '--real-time-factor', '2', '--tail', '0']) == 0
    with open_episode(list_episodes(tmp_path / 'no_tail')[0]) as ep:
        assert 0.25 <= with_tail - (ep.timestamps[-1] - ep.timestamps[0]) <= 0.85
