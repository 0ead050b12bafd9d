"""The one results model of both evaluation runners: keys, honest nulls, Wilson intervals, the
first success/failure GIFs and the table."""
import json

import numpy as np
import pytest

from vla_common.evaluation import (EPISODE_KEYS, OVERALL_KEYS, RESULT_KEYS, TASK_KEYS, Episode,
                                   FirstOutcomeVideos, format_table, latency_summary,
                                   run_episodes, summarize, write_results)
from vla_common.stats import wilson_interval

TASKS = ['pick_red', 'pick_blue', 'stack']


def _episode(task, seed, success, estops=0, timed_out=False, frames=True):
    return Episode(task, seed, success, reward=1.0 if success else 0.25, length=100 + seed % 10,
                   sim_time=3.0, wall_time=1.0, timed_out=timed_out, estops=estops,
                   note='silent' if timed_out else '',
                   frames=[np.full((8, 8, 3), seed % 250, np.uint8)] * 2 if frames else [])


def test_same_seeds_per_task_and_first_outcome_gifs(tmp_path):
    outcomes = {('pick_red', 1000): True, ('pick_red', 1001): False, ('pick_red', 1002): True,
                ('pick_red', 1003): False, ('pick_blue', 1000): False, ('pick_blue', 1001): False,
                ('pick_blue', 1002): False, ('pick_blue', 1003): True}
    calls, seen = [], []
    videos = FirstOutcomeVideos(tmp_path / 'run' / 'eval' / 'videos', video_root=tmp_path / 'run')

    def run_one(task, seed):
        calls.append((task, seed))
        return _episode(task, seed, outcomes[(task, seed)])

    episodes = run_episodes(run_one, ['pick_red', 'pick_blue'], 4, 1000, videos=videos,
                            on_episode=seen.append)
    assert calls == list(outcomes) and seen == episodes
    assert all(e.frames == [] for e in episodes)  # dropped once written
    names = sorted(p.name for p in (tmp_path / 'run' / 'eval' / 'videos').iterdir())
    assert names == ['pick_blue_failure_seed1000.gif', 'pick_blue_success_seed1003.gif',
                     'pick_red_failure_seed1001.gif', 'pick_red_success_seed1000.gif']
    assert episodes[0].video == 'eval/videos/pick_red_success_seed1000.gif'  # relative to the run
    assert [e.video is not None for e in episodes] == [True, True, False, False, True, False, False, True]
    with pytest.raises(ValueError, match='episodes'):
        run_episodes(run_one, ['pick_red'], 0, 1000)


def test_a_video_outside_the_run_directory_keeps_its_absolute_path(tmp_path):
    videos = FirstOutcomeVideos(tmp_path / 'elsewhere', video_root=tmp_path / 'run')
    episode = _episode('pick_red', 1000, True)
    videos.keep(episode)
    assert episode.video == str((tmp_path / 'elsewhere' / 'pick_red_success_seed1000.gif').resolve())
    nothing = _episode('pick_red', 1001, False, frames=False)  # no frames captured: no GIF
    assert videos.keep(nothing) is None and nothing.video is None


def test_results_keys_and_wilson_intervals(tmp_path):
    episodes = [_episode('pick_red', 1000 + i, i < 3, estops=int(i == 4), timed_out=i == 4)
                for i in range(5)] + [_episode('stack', 1000 + i, i == 0) for i in range(5)]
    summary = summarize(episodes, policy='expert', runner='ros', episodes_per_task=5, seed=1000,
                        latency_ms=latency_summary([1.0, 2.0, 3.0]), control_rate_hz=29.9,
                        simulation={'mode': 'real_time', 'real_time_factor': 1.0},
                        machine={'cpu_capability': 'AVX2', 'cores': 2})
    assert tuple(summary) == RESULT_KEYS and summary['runner'] == 'ros'
    red = summary['tasks']['pick_red']
    assert tuple(red) == TASK_KEYS and tuple(summary['overall']) == OVERALL_KEYS
    assert (red['n'], red['successes'], red['estops'], red['timeouts']) == (5, 3, 1, 1)
    assert red['ci95'] == [round(x, 4) for x in wilson_interval(3, 5)]
    assert red['mean_reward'] == round((3 * 1.0 + 2 * 0.25) / 5, 4)
    overall = summary['overall']
    assert (overall['n'], overall['successes'], overall['estops'], overall['timeouts']) == (10, 4, 1, 1)
    assert [tuple(e) for e in summary['episodes']] == [EPISODE_KEYS] * 10
    assert summary['latency_ms'] == {'p50': 2.0, 'p99': 2.98, 'mean': 2.0, 'n': 3,
                                     'samples': [1.0, 2.0, 3.0]}
    path = write_results(tmp_path / 'eval' / 'baseline.json', summary)
    assert json.loads(path.read_text()) == summary
    table = format_table(summary)
    assert 'pick_red' in table and '3/5 60%' in table and 'real time x1' in table
    assert 'pick_red seed 1004: silent' in table


def test_in_process_results_say_null_where_nothing_was_observed():
    episodes = [_episode('pick_red', 1000, True, estops=None), _episode('pick_red', 1001, False, estops=None)]
    summary = summarize(episodes, policy='checkpoint:x', runner='in-process', episodes_per_task=2,
                        seed=1000, latency_ms=latency_summary([0.5] * 4), checkpoint_metadata={'step': 3})
    assert tuple(summary)[:len(RESULT_KEYS) - 1] == RESULT_KEYS[:-1]
    assert summary['checkpoint_metadata'] == {'step': 3} and 'episodes' in summary
    for key in ('control_rate_hz', 'simulation', 'controller', 'machine'):
        assert summary[key] is None
    assert summary['tasks']['pick_red']['estops'] is None and summary['overall']['estops'] is None
    assert summary['tasks']['pick_red']['timeouts'] == 0
    table = format_table(summary)
    assert 'select_action latency: p50 0.50 ms' in table and 'in-process' in table
    assert table.splitlines()[1].rstrip().endswith('-')  # e-stops not counted, not 0
    assert latency_summary([]) == {}
    with pytest.raises(ValueError, match='runner'):
        summarize(episodes, policy='x', runner='sim', episodes_per_task=2, seed=0)
