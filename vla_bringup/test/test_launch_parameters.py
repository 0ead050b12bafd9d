"""Launch-time values win over the nodes' YAML sections, computed the way rcl resolves them.

Both start paths are checked for every scenario and every node: ``ros2 launch`` (launch_ros
gets the YAML files, then a node-scoped overrides file) and the ``vla`` runner (``-p
<node>:<key>:=<value>``).  No launch_ros needed.
"""
import pytest

from vla_bringup.launch_parameters import (file_source, launch_parameter_files,
                                           resolve_parameters, runner_sources)
from vla_bringup.scenarios import ARGUMENTS, SCENARIOS, build_scenario

#: a non-default value for every launch argument a scenario declares
GIVEN = {'use_sim': 'true', 'task': 'stack_green_on_red', 'seed': '7', 'real_time_factor': '2.5',
         'checkpoint': '/tmp/runs/demo/checkpoint', 'command': 'pick up the red cube',
         'expert': 'true', 'lockstep': 'true', 'output_dir': '/tmp/my_demos', 'language_command': 'stack them',
         'record_bag': 'true', 'image_size': '96'}


def _given(scenario):
    names = {a.name for a in ARGUMENTS[scenario]}
    assert names <= set(GIVEN), f'give a test value for {sorted(names - set(GIVEN))}'
    return {k: v for k, v in GIVEN.items() if k in names}


@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_every_launch_time_value_reaches_its_node_on_both_paths(scenario, tmp_path):
    specs = build_scenario(scenario, _given(scenario))
    assert specs
    for spec in specs:
        launch_files = launch_parameter_files(spec, tmp_path / scenario)
        via_launch = resolve_parameters(spec.name, [file_source(f) for f in launch_files])
        via_runner = resolve_parameters(spec.name, runner_sources(spec))
        for key, value in spec.parameters.items():
            assert via_launch[key] == value, (scenario, spec.name, key, 'ros2 launch')
            assert via_runner[key] == value, (scenario, spec.name, key, 'vla runner')
        assert via_launch == via_runner, (scenario, spec.name)


def test_a_wildcard_override_loses_to_the_node_section(tmp_path):
    """The bug this guards against: launch_ros writes a parameter dict under ``/**``, and rcl
    applies the node's own YAML section (``vla_controller: checkpoint: ''``) over it."""
    (controller,) = [s for s in build_scenario('deploy', {'checkpoint': '/ckpt'})
                     if s.name == 'vla_controller']
    sources = [file_source(f) for f in controller.param_files]
    assert any('checkpoint' in entry for src in sources for entry in src.values())
    wildcard = resolve_parameters('vla_controller', [*sources, {'/**': dict(controller.parameters)}])
    assert wildcard['checkpoint'] != '/ckpt'
    scoped = resolve_parameters('vla_controller',
                                [file_source(f) for f in launch_parameter_files(controller, tmp_path)])
    assert scoped['checkpoint'] == '/ckpt'


def test_resolution_follows_rcl_wildcards_and_order():
    sources = [{'/**': {'a': 1, 'b': 1}}, {'node': {'a': 2}}, {'/**': {'a': 3, 'b': 3}},
               {'/other': {'a': 9}}, {'/ns/*': {'c': 4}}]
    assert resolve_parameters('node', sources) == {'a': 2, 'b': 3}
    assert resolve_parameters('/ns/node', sources) == {'a': 3, 'b': 3, 'c': 4}
    assert resolve_parameters('/other', sources) == {'a': 9, 'b': 3}
