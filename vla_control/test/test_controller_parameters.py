"""The controller's parameter table and the settings read from it (ROS-free)."""
from vla_control.loading import PolicySettings
from vla_control.parameters import PARAMETERS, refused_change


def test_only_the_run_time_parameters_may_change_while_the_node_runs():
    assert refused_change(['encode_every_tick', 'use_sim_time']) == ''
    assert refused_change(['encode_every_tick', 'checkpoint']) == (
        'checkpoint is read at start-up: restart vla_controller to change it')


def test_policy_settings_come_from_the_parameters_defaults():
    defaults = {name: default for name, default, _ in PARAMETERS}
    settings = PolicySettings.from_parameters(defaults.__getitem__)
    assert settings == PolicySettings(checkpoint='')
    settings = PolicySettings.from_parameters({**defaults, 'num_threads': 0,
                                               'inference': 'async'}.__getitem__)
    assert settings.num_threads == 1 and settings.inference == 'async'


def test_both_start_paths_leave_autostart_on_so_the_controller_configures_and_activates(tmp_path):
    """``ros2 launch vla_bringup deploy.launch.py`` and ``vla deploy`` (and every scenario with
    the controller) call no lifecycle service: the node's ``autostart`` takes it to active.
    Resolved the way rcl does, from the files each path hands the node."""
    from vla_bringup.launch_parameters import (file_source, launch_parameter_files,
                                               resolve_parameters, runner_sources)
    from vla_bringup.scenarios import ARGUMENTS, SCENARIOS, build_scenario
    default = dict((name, value) for name, value, _ in PARAMETERS)['autostart']
    started = []
    for scenario in sorted(SCENARIOS):
        given = {'checkpoint': '/ckpt'} if 'checkpoint' in {a.name for a in ARGUMENTS[scenario]} else {}
        for spec in build_scenario(scenario, given):
            if spec.name != 'vla_controller':
                continue
            files = launch_parameter_files(spec, tmp_path / scenario)
            for sources in ([file_source(f) for f in files], runner_sources(spec)):
                assert resolve_parameters(spec.name, sources).get('autostart', default) is True
            started.append(scenario)
    assert 'deploy' in started
