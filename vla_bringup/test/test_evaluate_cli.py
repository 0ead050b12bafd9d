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
    assert result['simulation']['timeouts_before_episodes'] >= 0  # start-up ticks, counted apart
    assert [tuple(e) for e in result['episodes']] == [EPISODE_KEYS] * 2


def test_evaluate_until_decided_stops_when_the_sequential_test_decides(tmp_path, capsys):
    """`vla evaluate --until-decided --against A.json`: the scripted expert (B) against an A that
    failed every episode; the rule is printed before the first episode and the run stops once it
    decides, not after --episodes per task."""
    a = tmp_path / 'a.json'
    a.write_text(json.dumps({'episodes': [{'task': t, 'seed': s, 'success': False}
                                          for t in ('pick_blue', 'pick_red') for s in range(1000, 1010)]}))
    out = tmp_path / 'b.json'
    assert main(['evaluate', '--policy', 'expert', '--tasks', 'pick_blue,pick_red', '--episodes', '10',
                 '--until-decided', '--against', str(a), '--odds', '9', '--alpha', '0.1',
                 '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    seq = result['sequential']
    # ln(2 / alpha) / ln(2 * 0.9) = 5.1: the sixth pair B alone solved decides
    assert seq['decision'] == 'B better' and seq['pairs'] == 6 and seq['max_pairs'] == 20
    assert seq['saved_episodes'] == 14 and seq['b_only'] == 6 and 'SPRT' in seq['rule']
    assert [(e['task'], e['seed']) for e in result['episodes']] == [
        (t, s) for s in range(1000, 1003) for t in ('pick_blue', 'pick_red')]
    captured = capsys.readouterr()
    assert 'fixed before the first episode' in captured.err
    assert 'sequential decision' in captured.out and 'B better' in captured.out
    assert main(['evaluate', '--policy', 'expert', '--until-decided']) == 1
    assert '--until-decided needs --against' in capsys.readouterr().err


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
