"""The robot description, read once from robot.yaml, and the node parameter defaults it gives."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vla_common import robot as robot_module
from vla_common.robot import (ROBOT_YAML_ENV, RobotDescription, RobotDescriptionError, default_robot,
                              load_robot, robot_defaults, robot_yaml, robot_yaml_candidates)

SOURCE = Path(__file__).resolve().parents[1] / 'config' / 'robot.yaml'  # vla_common's own


def _write(path: Path, params: dict, section: str = '/**') -> Path:
    path.write_text(yaml.safe_dump({section: {'ros__parameters': params}}))
    return path


ARM = {'joint_names': ['a', 'b', 'gripper'], 'joint_lower': [-1.0, -2.0, 0.0],
       'joint_upper': [1.0, 2.0, 0.08], 'max_velocity': [2.0, 1.5, 0.5]}


def test_the_default_robot_is_robot_yaml():
    robot = default_robot()
    expected = yaml.safe_load(SOURCE.read_text())['/**']['ros__parameters']
    assert robot.parameters() == {k: expected[k] for k in ('joint_names', 'joint_lower',
                                                           'joint_upper', 'max_velocity')}
    assert robot.n == 7 and robot.source == str(robot_yaml())
    assert default_robot() is robot  # read once
    # vla_common's own file (installed to share/vla_common/config, or the source tree's)
    assert robot_yaml().parent.name == 'config' and 'vla_common' in str(robot_yaml().parent.parent)
    assert robot_yaml().read_text() == SOURCE.read_text()


def test_defaults_follow_the_nodes_joint_names():
    robot = default_robot()
    defaults = robot_defaults()
    assert defaults['joint_names'] == list(robot.joint_names)
    assert defaults['joint_upper'] == list(robot.joint_upper)
    picked = robot_defaults(['gripper', 'joint1'])
    assert picked['max_velocity'] == [robot.max_velocity[-1], robot.max_velocity[0]]
    assert robot_defaults(['joint1', 'wrist_cam_tilt'])['joint_lower'] is None  # must be given


def test_load_reads_a_ros_parameter_file(tmp_path):
    robot = load_robot(_write(tmp_path / 'arm.yaml', ARM))
    assert robot.joint_names == ('a', 'b', 'gripper') and robot.joint_lower == (-1.0, -2.0, 0.0)
    assert robot.per_joint('max_velocity', ['b']) == [1.5]
    assert load_robot(_write(tmp_path / 'node.yaml', ARM, section='my_node')).n == 3


@pytest.mark.parametrize('change, match', [
    ({'joint_lower': [-1.0, -2.0]}, 'joint_lower has 2 values for the 3 joints'),
    ({'joint_upper': [1.0, -3.0, 0.08]}, r"joint_lower must be below joint_upper for \['b'\]"),
    ({'max_velocity': [2.0, 0.0, 0.5]}, r"max_velocity must be > 0 for \['b'\]"),
    ({'joint_names': ['a', 'a', 'gripper']}, 'repeated names'),
    ({'joint_upper': [1.0, float('inf'), 0.08]}, 'joint_upper must be finite'),
    ({'max_velocity': 2.0}, 'max_velocity must be a list of numbers'),
])
def test_a_bad_description_is_named(tmp_path, change, match):
    path = _write(tmp_path / 'arm.yaml', {**ARM, **change})
    with pytest.raises(RobotDescriptionError, match=match) as err:
        load_robot(path)
    assert str(path) in str(err.value)


def test_a_file_without_the_robot_is_named(tmp_path):
    with pytest.raises(RobotDescriptionError, match='lacks'):
        load_robot(_write(tmp_path / 'part.yaml', {'joint_names': ['a']}))
    with pytest.raises(RobotDescriptionError, match='no ros__parameters section sets joint_names'):
        load_robot(_write(tmp_path / 'other.yaml', {'rate': 30.0}))
    with pytest.raises(RobotDescriptionError, match='cannot read'):
        load_robot(tmp_path / 'missing.yaml')


def test_the_environment_names_another_robot(tmp_path, monkeypatch):
    path = _write(tmp_path / 'arm.yaml', ARM)
    monkeypatch.setenv(ROBOT_YAML_ENV, str(path))
    assert robot_yaml_candidates() == [path] and robot_yaml() == path
    assert default_robot().joint_names == ('a', 'b', 'gripper')
    monkeypatch.setenv(ROBOT_YAML_ENV, str(tmp_path / 'nowhere.yaml'))
    with pytest.raises(RobotDescriptionError, match=ROBOT_YAML_ENV):
        default_robot()


def test_built_in_code_it_checks_the_same():
    robot = RobotDescription(('a',), (-1,), (1,), (2,))
    assert robot.joint_upper == (1.0,) and robot_module.PER_JOINT == ('joint_lower', 'joint_upper',
                                                                      'max_velocity')
    with pytest.raises(KeyError):
        robot.per_joint('position_limit')


def test_without_a_description_the_robot_parameters_must_be_given(tmp_path, monkeypatch):
    from rclpy.parameter import Parameter

    from vla_common.parameters import robot_default
    from vla_common.robot import RobotDescriptionNotFound
    assert robot_default('joint_upper') == list(default_robot().joint_upper)
    assert robot_default('joint_lower', ['joint1', 'unknown']) == Parameter.Type.DOUBLE_ARRAY
    monkeypatch.setenv(ROBOT_YAML_ENV, str(tmp_path / 'nowhere.yaml'))
    with pytest.raises(RobotDescriptionNotFound):
        default_robot()
    assert robot_default('joint_names') == Parameter.Type.STRING_ARRAY
    assert robot_default('max_velocity', ['a']) == Parameter.Type.DOUBLE_ARRAY
    monkeypatch.setenv(ROBOT_YAML_ENV, str(_write(tmp_path / 'bad.yaml', {'joint_names': ['a']})))
    with pytest.raises(RobotDescriptionError, match='lacks'):  # a broken file is an error
        robot_default('joint_names')
