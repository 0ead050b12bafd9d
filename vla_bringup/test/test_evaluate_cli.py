"""`vla evaluate --policy expert` end to end: sim_node + scripted expert over real ROS topics."""
import json

import pytest

from vla_bringup.cli import main

pytestmark = pytest.mark.ros


def test_evaluate_expert_writes_results_json(tmp_path, capsys):
    out = tmp_path / 'baseline.json'
    rc = main(['evaluate', '--policy', 'expert', '--tasks', 'pick_blue', '--episodes', '2',
               '--seed', '1000', '--json', str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    task = result['tasks']['pick_blue']
    assert task['n'] == 2 and result['overall']['n'] == 2
    assert result['seed'] == 1000 and result['episodes_per_task'] == 2
    assert [e['seed'] for e in result['episodes']] == [1000, 1001]
    assert task['successes'] == 2, result  # the scripted expert solves pick tasks
    low, high = task['ci95']
    assert 0.0 < low < 1.0 and high == 1.0
    assert 'pick_blue' in capsys.readouterr().out
    from vla_common.evaluation import EPISODE_KEYS, OVERALL_KEYS, RESULT_KEYS, TASK_KEYS
    assert tuple(result) == RESULT_KEYS and result['runner'] == 'ros'
    assert tuple(task) == TASK_KEYS and tuple(result['overall']) == OVERALL_KEYS
    assert task['estops'] == 0 and task['timeouts'] == 0  # the safety monitor runs in the sim scenario
    assert result['simulation']['mode'] == 'lockstep' and result['controller'] is None
    assert [tuple(e) for e in result['episodes']] == [EPISODE_KEYS] * 2


def test_unknown_task_is_a_clear_error(capsys):
    assert main(['evaluate', '--policy', 'expert', '--tasks', 'pick_purple']) == 1
    err = capsys.readouterr().err
    assert "unknown task(s) ['pick_purple']" in err and 'pick_red' in err


@pytest.mark.parametrize('argv', [['--help'], ['sim', '--help'], ['evaluate', '--help'],
                                  ['demo', '--help']])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    assert 'usage: vla' in capsys.readouterr().out
