"""A lock-step episode whose command source went silent ends as a timeout naming the topic."""
from vla_bringup.episodes import SILENT_TICKS_LIMIT, silence
from vla_bringup.evaluation import simulation_summary
from vla_common.evaluation import simulation_text


def test_silence_names_the_topic_only_past_the_limit():
    status = {'silent_ticks': SILENT_TICKS_LIMIT - 1, 'silent': ['/joint_trajectory_controller/joint_trajectory']}
    assert silence(status) == ''  # e.g. a controller settling after a new command (0.3 s)
    status['silent_ticks'] = SILENT_TICKS_LIMIT
    text = silence(status)
    assert '/joint_trajectory_controller/joint_trajectory' in text and str(SILENT_TICKS_LIMIT) in text
    assert silence({}) == ''  # a real-time simulator reports no silent ticks


def test_results_say_which_timing_ran():
    lockstep = simulation_summary(None, {'timeouts': 3}, {'ticks': '900', 'lockstep_silent: /x': '3'})
    assert lockstep == {'mode': 'lockstep', 'timeouts': 3, 'ticks': 900, 'silent': {'/x': 3}}
    assert simulation_text(lockstep).startswith('lock-step (3 tick(s)')
    # ticks the simulator stepped before the first episode (its start-up, no controller yet)
    # are no episode's: counted apart
    started = simulation_summary(None, {'timeouts': 40}, {'ticks': '446'}, before=32)
    assert started['timeouts'] == 8 and started['timeouts_before_episodes'] == 32
    assert 'timeout in the episodes, 32 before the first' in simulation_text(started)
    real = simulation_summary(1.0, None, None)
    assert real == {'mode': 'real_time', 'real_time_factor': 1.0}
    assert simulation_text(real) == 'real time x1'
