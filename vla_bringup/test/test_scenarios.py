import ast
from pathlib import Path

import pytest

from vla_bringup.scenarios import ARGUMENTS, SCENARIOS, build_scenario

LAUNCH_DIR = Path(__file__).resolve().parent.parent / 'launch'


def test_sim_scenario_nodes_and_parameters():
    specs = build_scenario('sim', {'task': 'stack_green_on_red', 'seed': '7'})
    names = [s.name for s in specs]
    assert names[0] == 'sim_node'
    sim = specs[0]
    assert sim.parameters['task'] == 'stack_green_on_red' and sim.parameters['seed'] == 7
    assert all(Path(f).is_file() for s in specs for f in s.param_files)
    cmd = sim.command()
    assert cmd[1:3] == ['-m', 'vla_sim.sim_node'] and '--ros-args' in cmd
    assert '__node:=sim_node' in cmd


def test_every_node_gets_the_robot_description_of_vla_common_or_the_environment(tmp_path, monkeypatch):
    from vla_common.robot import ROBOT_YAML_ENV, robot_yaml
    from vla_bringup.scenarios import config_file
    files = lambda: {f for s in build_scenario('deploy', {'use_sim': 'true'}) for f in s.param_files}  # noqa: E731
    assert config_file('robot.yaml') == str(robot_yaml()) in files()
    assert 'vla_common' in config_file('robot.yaml') and 'vla_bringup' in config_file('sim.yaml')
    own = tmp_path / 'arm.yaml'
    own.write_text(robot_yaml().read_text())
    monkeypatch.setenv(ROBOT_YAML_ENV, str(own))  # your own arm: every node is started with it
    assert str(own) in files() and str(robot_yaml()) == str(own)


def test_sim_faster_than_real_time_uses_sim_time():
    specs = build_scenario('sim', {'real_time_factor': '3.0'})
    assert specs[0].parameters['publish_clock'] is True
    assert all(s.parameters.get('use_sim_time') for s in specs[1:])


def test_image_size_is_given_or_the_checkpoints(tmp_path):
    """The simulator renders image_size:=N, else (deploy) the size the checkpoint was trained on
    (read from its config.json), else sim.yaml's."""
    import json
    sim = lambda name, args: build_scenario(name, args)[0].parameters  # noqa: E731
    assert sim('sim', {'image_size': '96'})['image_size'] == 96
    assert 'image_size' not in sim('sim', {})
    run = tmp_path / 'run'
    (run / 'checkpoint').mkdir(parents=True)
    (run / 'checkpoint' / 'config.json').write_text(json.dumps({'source_image_size': [128, 128]}))
    assert sim('deploy', {'checkpoint': str(run)})['image_size'] == 128  # a training run directory
    assert sim('deploy', {'checkpoint': str(run / 'checkpoint'), 'image_size': '64'})['image_size'] == 64
    assert 'image_size' not in sim('deploy', {'checkpoint': str(tmp_path / 'missing')})
    (tmp_path / 'seeds' / 'seed_0').mkdir(parents=True)  # several models: none to read
    (tmp_path / 'seeds' / 'seeds.json').write_text('{}')
    assert 'image_size' not in sim('deploy', {'checkpoint': str(tmp_path / 'seeds')})
    with pytest.raises(ValueError, match='image_size must be an integer >= 8'):
        build_scenario('sim', {'image_size': 'big'})


def test_building_a_scenario_does_not_import_torch():
    """The launch side reads a checkpoint's config.json through vla_policy.checkpoint_files;
    vla_policy's public names load on first use, so neither imports torch (seconds)."""
    import os
    import subprocess
    import sys
    code = ('import sys, vla_bringup.scenarios, vla_policy; '
            'from vla_policy import VLAConfig, preset, CheckpointError, IncompatibleCheckpoint; '
            'from vla_policy.checkpoint_files import resolve_checkpoint; '
            'assert set(vla_policy.__all__) <= set(dir(vla_policy)), dir(vla_policy); '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")))')
    out = subprocess.run([sys.executable, '-c', code], env=dict(os.environ), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


def test_unknown_scenario_or_argument_is_a_clear_error():
    with pytest.raises(ValueError, match='unknown scenario'):
        build_scenario('nope')
    with pytest.raises(ValueError, match="unknown argument"):
        build_scenario('sim', {'tsak': 'x'})


@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_launch_file_reads_the_scenario(scenario):
    """Each launch file is a thin reader of vla_bringup.scenarios (checked where launch_ros
    is missing too: the file must parse and name its scenario)."""
    path = LAUNCH_DIR / f'{scenario}.launch.py'
    tree = ast.parse(path.read_text())
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert funcs == ['generate_launch_description']
    assert f"launch_description('{scenario}')" in path.read_text()
    assert ARGUMENTS[scenario], 'every scenario declares its launch arguments'


def test_launch_description_builds_where_launch_ros_is_installed():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI; '
                        'this check runs on a ROS 2 install')
    from vla_bringup.launch_support import launch_description
    for scenario in SCENARIOS:
        assert launch_description(scenario).entities


def test_lockstep_puts_every_node_on_the_simulators_clock_and_the_sim_waits_for_the_recorder():
    from vla_bringup.scenarios import RECORDER_TICK_TOPIC, collection_scenario
    specs = build_scenario('sim', {'lockstep': 'true'})
    sim = specs[0]
    assert sim.parameters['lockstep'] is True and sim.parameters['publish_clock'] is True
    assert all(s.parameters.get('use_sim_time') for s in specs[1:])
    collect = collection_scenario({'lockstep': True}, '/tmp/demos')
    assert collect[0].parameters['lockstep_acks'] == [RECORDER_TICK_TOPIC]
    assert collect[-1].name == 'teleop_collector' and collect[-1].parameters['lockstep'] is True
    # real time (sim.launch.py's default) neither waits nor needs /clock
    default = build_scenario('sim')
    assert default[0].parameters['lockstep'] is False and 'use_sim_time' not in default[1].parameters
    assert build_scenario('deploy', {'use_sim': 'false', 'lockstep': 'true'})[0].name != 'sim_node'


def test_a_real_robot_gets_zero_stamped_commands():
    """ros2_control's JTC drops 'now'-stamped trajectories that end before its clock; the
    simulator needs 'now' stamps to drop commands sent before a reset."""
    def gate(args):
        (spec,) = [s for s in build_scenario('deploy', args) if s.name == 'command_gate']
        return spec
    assert gate({'use_sim': 'false'}).parameters['stamp_mode'] == 'zero'
    assert 'stamp_mode' not in gate({'use_sim': 'true'}).parameters
