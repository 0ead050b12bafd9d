"""The one description of each scenario (which nodes, parameter files, remappings).

``launch/*.launch.py`` (on a ROS 2 install) and the ``vla`` runner (anywhere) are both thin
readers of this module, so the two cannot drift.  No rclpy or launch import here.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from vla_common.config_files import config_file as package_config_file
from vla_common.launching import NodeSpec
from vla_common.robot import ROBOT_YAML, robot_yaml
from vla_policy.checkpoint_files import CONFIG_FILE, CheckpointError, resolve_checkpoint

#: topic the robot obeys (ros2_control's joint_trajectory_controller)
ROBOT_COMMAND_TOPIC = '/joint_trajectory_controller/joint_trajectory'
EXPERT_LABEL_TOPIC = '/scripted_expert/label'  # the expert's clean command when it executes noise
#: the scripted expert's end-effector delta command (action_mode ee_delta), recorded as /actions_ee
EXPERT_EE_TOPIC = '/scripted_expert/ee_command'
#: topic every command source publishes its *requested* command on
REQUEST_TOPIC = '/vla/command'
#: the recorder's acknowledgement of each lock-step tick (std_msgs/Header)
RECORDER_TICK_TOPIC = '/teleop_collector/tick'


def config_file(name: str) -> str:
    """Absolute path of a parameter file the scenarios start nodes with: ``robot.yaml`` is the
    robot description (``vla_common``'s, or ``$VLA_ROBOT_YAML``: :func:`vla_common.robot.robot_yaml`),
    any other name is ``vla_bringup/config/<name>`` (installed share directory, then the source
    tree)."""
    if name == ROBOT_YAML:
        return str(robot_yaml())
    return str(package_config_file('vla_bringup', name))


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


COMMON_ARGUMENTS = (
    LaunchArgument('use_sim', 'true', 'true: the MuJoCo simulated arm; false: a real robot that '
                   'publishes /camera/image_raw and /joint_states and obeys ' + ROBOT_COMMAND_TOPIC),
    LaunchArgument('task', 'pick_red', 'simulator task at start-up: pick_red, pick_green, '
                   'pick_blue, stack_green_on_red (vla_sim.TASKS), or a workbench task: '
                   'reach_marker, push_to_goal, press_button, open_drawer, insert_peg'),
    LaunchArgument('seed', '0', 'simulator seed at start-up'),
    LaunchArgument('real_time_factor', '1.0', 'simulator speed relative to wall time'),
    LaunchArgument('lockstep', 'false', 'true: the simulator steps when the command of each tick '
                   'has arrived (or after a timeout), every node on its /clock: as fast as the '
                   'nodes answer, the same episodes on any machine; false: real time (x '
                   'real_time_factor), as a real robot runs'),
    LaunchArgument('image_size', '', 'square camera images (px) the simulator renders; \'\' = '
                   'the size the checkpoint was trained on (deploy), else sim.yaml\'s (224)'),
)


def _value(text: Any) -> Any:
    """Launch arguments arrive as strings; parse them as YAML scalars (true, 3, 1.5, text)."""
    return yaml.safe_load(text) if isinstance(text, str) else text


def lockstep(args: Mapping[str, Any]) -> bool:
    """Whether the simulator runs in lock-step with the graph (never with a real robot)."""
    return bool(_value(args.get('use_sim', True))) and bool(_value(args.get('lockstep', False)))


def robot_nodes(args: Mapping[str, Any], acks: tuple[str, ...] = ()) -> list[NodeSpec]:
    """The robot: the simulator when ``use_sim`` is true, nothing (the real driver) otherwise.

    In lock-step the simulator also waits for the ``acks`` topics (e.g. the recorder's ticks).
    """
    if not _value(args.get('use_sim', True)):
        return []
    rtf = float(_value(args.get('real_time_factor', 1.0)))
    parameters = {'task': str(args.get('task', 'pick_red')), 'seed': int(_value(args.get('seed', 0))),
                  'real_time_factor': rtf, 'publish_clock': rtf != 1.0 or lockstep(args),
                  'lockstep': lockstep(args)}
    if lockstep(args) and acks:
        parameters['lockstep_acks'] = list(acks)
    size = image_size(args)
    if size:
        parameters['image_size'] = size
    return [NodeSpec('vla_sim', 'sim_node', 'vla_sim.sim_node', 'sim_node',
                     param_files=(config_file('robot.yaml'), config_file('sim.yaml')),
                     parameters=parameters)]


def image_size(args: Mapping[str, Any]) -> int | None:
    """The simulator's image size: ``image_size`` when given, else the (square) size the
    ``checkpoint`` was trained on, else None (sim.yaml's)."""
    size = _value(args.get('image_size', ''))
    if size not in ('', None):
        if not isinstance(size, int) or size < 8:
            raise ValueError(f'image_size must be an integer >= 8 (pixels), got {size!r}')
        return size
    trained = checkpoint_image_size(str(args.get('checkpoint', '') or ''))
    return trained[0] if trained and trained[0] == trained[1] else None


def checkpoint_image_size(checkpoint: str) -> list[int] | None:
    """[H, W] of the images a checkpoint (or training run directory) was trained on, read from
    its config.json without loading the model (or importing torch); None when unknown."""
    if not checkpoint:
        return None
    try:
        config = resolve_checkpoint(checkpoint) / CONFIG_FILE
        size = json.loads(config.read_text()).get('source_image_size')
    except (CheckpointError, OSError, json.JSONDecodeError, AttributeError):
        return None
    return [int(v) for v in size] if size and len(size) == 2 else None


def sim_time_parameters(args: Mapping[str, Any]) -> dict[str, Any]:
    """Nodes run on the simulator's /clock whenever it is not running at wall time."""
    sim = _value(args.get('use_sim', True))
    rtf = float(_value(args.get('real_time_factor', 1.0)))
    return {'use_sim_time': True} if sim and (rtf != 1.0 or lockstep(args)) else {}


def expert_nodes(args: Mapping[str, Any]) -> list[NodeSpec]:
    """The scripted expert as the command source (simulation only: it needs privileged state)."""
    parameters = sim_time_parameters(args)
    if exec_noise(args):
        parameters['exec_noise'] = exec_noise(args)
    if ee_actions(args):
        parameters['action_mode'] = 'ee_delta'
    return [NodeSpec('vla_sim', 'scripted_expert', 'vla_sim.expert_node', 'scripted_expert',
                     param_files=(config_file('robot.yaml'), config_file('sim.yaml')),
                     parameters=parameters)]


def ee_actions(args: Mapping[str, Any]) -> bool:
    """Whether the scripted expert commands end-effector deltas (``action_mode: ee_delta``)."""
    mode = str(args.get('action_mode', 'joint') or 'joint')
    if mode not in ('joint', 'ee_delta'):
        raise ValueError(f"action_mode must be 'joint' or 'ee_delta', got {mode!r}")
    return mode == 'ee_delta'


def exec_noise(args: Mapping[str, Any]) -> float:
    """The std (rad) of the noise the scripted expert executes (0: none)."""
    return float(_value(args.get('exec_noise', 0.0)) or 0.0)


def safety_nodes(args: Mapping[str, Any]) -> list[NodeSpec]:
    """The command gate (the only path from REQUEST_TOPIC to the robot) and the safety monitor
    (limits, joint-state watchdog, latched /emergency_stop)."""
    files = (config_file('robot.yaml'), config_file('safety.yaml'))
    gate = {**sim_time_parameters(args), 'input_topic': REQUEST_TOPIC,
            'output_topic': ROBOT_COMMAND_TOPIC}
    if not _value(args.get('use_sim', True)):
        # A real ros2_control joint_trajectory_controller starts a zero-stamped trajectory on
        # receipt and drops a 'now'-stamped one that ends before its clock (latency, skew); the
        # simulator needs 'now' stamps to drop commands sent before its last reset.
        gate['stamp_mode'] = 'zero'
    return [NodeSpec('vla_safety', 'safety_monitor', 'vla_safety.monitor_node', 'safety_monitor',
                     param_files=files, parameters=sim_time_parameters(args)),
            NodeSpec('vla_safety', 'command_gate', 'vla_safety.gate_node', 'command_gate',
                     param_files=files, parameters=gate)]


def sim_scenario(args: Mapping[str, Any]) -> list[NodeSpec]:
    """The simulated robot driven by the scripted expert, every command through the gate."""
    nodes = robot_nodes({**args, 'use_sim': True}) + safety_nodes({**args, 'use_sim': True})
    if _value(args.get('expert', True)):
        nodes += expert_nodes(args)
    return nodes


def collection_scenario(args: Mapping[str, Any], output_dir: str) -> list[NodeSpec]:
    """``vla collect``: the sim scenario (scripted expert through the gate) and the recorder;
    in lock-step the simulator also waits for the recorder's tick acknowledgements."""
    nodes = robot_nodes({**args, 'use_sim': True}, acks=(RECORDER_TICK_TOPIC,))
    nodes += safety_nodes({**args, 'use_sim': True}) + expert_nodes(args)
    return nodes + recorder_nodes({**args, 'output_dir': output_dir})


def recorder_nodes(args: Mapping[str, Any]) -> list[NodeSpec]:
    """The demonstration recorder, writing to ``output_dir`` (30 Hz in sim time when sped up;
    one step per tick, paired by stamps, in lock-step)."""
    parameters = {**sim_time_parameters(args), 'output_dir': str(args.get('output_dir', 'vla_data'))}
    if lockstep(args):
        parameters['lockstep'] = True
    if args.get('language_command'):
        parameters['language_command'] = str(args['language_command'])
    if 'record_bag' in args:
        parameters['record_bag'] = bool(_value(args['record_bag']))
    if 'extra_cameras' in args:  # e.g. [''] for the workbench, which has no wrist camera
        parameters['extra_cameras'] = [str(c) for c in args['extra_cameras']] or ['']
    if ee_actions(args):
        parameters['ee_action_topic'] = EXPERT_EE_TOPIC
    # an expert executing noise: record its clean command (DART), not the noisy one the robot got
    remap = ((ROBOT_COMMAND_TOPIC, EXPERT_LABEL_TOPIC),) if exec_noise(args) else ()
    return [NodeSpec('vla_collect', 'teleop_collector', 'vla_collect.collector_node',
                     'teleop_collector',
                     param_files=(config_file('robot.yaml'), config_file('collect.yaml')),
                     parameters=parameters, remappings=remap)]


def teleop_scenario(args: Mapping[str, Any]) -> list[NodeSpec]:
    """A person drives the robot (simulated or real) with a joystick; the recorder records.

    The joystick driver itself (``ros2 run joy joy_node``) and the terminal teleop
    (``ros2 run vla_collect keyboard_teleop``, it needs its own terminal) run beside it.
    """
    nodes = robot_nodes(args, acks=(RECORDER_TICK_TOPIC,)) + safety_nodes(args)
    nodes.append(NodeSpec('vla_collect', 'joy_teleop', 'vla_collect.joy_teleop_node', 'joy_teleop',
                          param_files=(config_file('robot.yaml'), config_file('teleop.yaml')),
                          parameters=sim_time_parameters(args)))
    return nodes + recorder_nodes(args)


def controller_nodes(args: Mapping[str, Any]) -> list[NodeSpec]:
    """The VLA controller running ``checkpoint``, optionally starting on ``command``."""
    parameters = {**sim_time_parameters(args), 'checkpoint': str(args.get('checkpoint', ''))}
    if lockstep(args):
        parameters['lockstep'] = True  # one answer per simulated tick, on its observations
    if args.get('command'):
        parameters['command'] = str(args['command'])
    return [NodeSpec('vla_control', 'vla_controller', 'vla_control.controller_node',
                     'vla_controller',
                     param_files=(config_file('robot.yaml'), config_file('controller.yaml')),
                     parameters=parameters)]


def deploy_scenario(args: Mapping[str, Any]) -> list[NodeSpec]:
    """A checkpoint driving the robot (simulated or real) through the gate and the monitor."""
    return robot_nodes(args) + safety_nodes(args) + controller_nodes(args)


SCENARIOS: dict[str, Callable[[Mapping[str, Any]], list[NodeSpec]]] = {
    'sim': sim_scenario,
    'deploy': deploy_scenario,
    'teleop': teleop_scenario,
}

ARGUMENTS: dict[str, tuple[LaunchArgument, ...]] = {
    'deploy': COMMON_ARGUMENTS + (
        LaunchArgument('checkpoint', '', 'policy checkpoint directory (written by `vla train`)'),
        LaunchArgument('command', '', 'initial language command, e.g. "pick up the red cube" '
                       '(later ones on /voice_command)'),),
    'sim': tuple(a for a in COMMON_ARGUMENTS if a.name != 'use_sim') + (
        LaunchArgument('expert', 'true', 'run the scripted expert as the command source'),),
    'teleop': COMMON_ARGUMENTS + (
        LaunchArgument('output_dir', 'vla_data', 'directory of the recorded episodes '
                       '(episode_NNNNNN.hdf5, numbering resumes after the highest)'),
        LaunchArgument('language_command', '', 'language command of the recorded episodes '
                       '(or publish it on /voice_command)'),
        LaunchArgument('record_bag', 'false', 'true: also keep the raw topics of each episode in '
                       'a rosbag2 (MCAP) directory beside it, episode_NNNNNN.bag'),),
}


def build_scenario(name: str, args: Mapping[str, Any] | None = None) -> list[NodeSpec]:
    """The nodes of scenario ``name`` for the given launch arguments (defaults filled in)."""
    if name not in SCENARIOS:
        raise ValueError(f'unknown scenario {name!r}; expected one of {sorted(SCENARIOS)}')
    values = {a.name: a.default for a in ARGUMENTS[name]}
    unknown = set(args or {}) - set(values)
    if unknown:
        raise ValueError(f'unknown argument(s) {sorted(unknown)} for scenario {name!r}; '
                         f'expected some of {sorted(values)}')
    values.update(args or {})
    return SCENARIOS[name](values)
