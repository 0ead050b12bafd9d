"""Every scenario that drives the robot routes its commands through the command gate."""
from vla_bringup.scenarios import ROBOT_COMMAND_TOPIC, REQUEST_TOPIC, build_scenario


def test_sim_scenario_has_the_gate_and_monitor_and_the_expert_talks_to_the_gate():
    specs = {s.name: s for s in build_scenario('sim', {'real_time_factor': '2.0'})}
    assert {'sim_node', 'command_gate', 'safety_monitor', 'scripted_expert'} <= set(specs)
    gate = specs['command_gate']
    assert gate.parameters['input_topic'] == REQUEST_TOPIC
    assert gate.parameters['output_topic'] == ROBOT_COMMAND_TOPIC
    assert gate.parameters['use_sim_time'] and specs['safety_monitor'].parameters['use_sim_time']
    assert any(f.endswith('safety.yaml') for f in gate.param_files)
    # nobody but the gate is remapped onto the robot's command topic
    for spec in specs.values():
        assert all(dst != ROBOT_COMMAND_TOPIC for _, dst in spec.remappings), spec.name
