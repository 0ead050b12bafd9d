"""resolve_tasks: what a --tasks value names (ROS-free)."""
import pytest

from vla_sim import ALL_TASKS, SUITES, TASKS, WORKBENCH_TASKS, resolve_tasks


def test_all_means_the_cube_tasks_and_suites_expand_in_order():
    assert resolve_tasks('all') == list(TASKS)
    assert resolve_tasks('workbench') == list(WORKBENCH_TASKS)
    assert resolve_tasks('tabletop') == list(SUITES['tabletop'])
    assert resolve_tasks('reach_marker, pick_red,workbench') == [
        'reach_marker', 'pick_red', *[t for t in WORKBENCH_TASKS if t != 'reach_marker']]
    assert set(resolve_tasks('tabletop,workbench')) == set(ALL_TASKS)


@pytest.mark.parametrize('spec', ['pick_purple', 'workbench,nope', '', ' , '])
def test_unknown_or_empty_names_say_what_is_valid(spec):
    with pytest.raises(ValueError, match='valid'):
        resolve_tasks(spec)


def test_action_names_say_which_action_mode_records_them():
    from vla_sim import EE_ACTION_NAMES, JOINT_NAMES, SimEnv, action_mode_for
    joint = SimEnv(render_images=False)
    ee = SimEnv(render_images=False, action_mode='ee_delta')
    assert joint.action_names == JOINT_NAMES and ee.action_names == EE_ACTION_NAMES
    assert len(ee.action_names) == len(ee.action_low) == 7
    assert action_mode_for(ee.action_names) == 'ee_delta' and action_mode_for(list(JOINT_NAMES)) == 'joint'
