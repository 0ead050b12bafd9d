"""`vla demo` end to end at the smallest size: every stage through real ROS nodes, then resume."""
import json

import pytest

from vla_bringup.cli import main

pytestmark = pytest.mark.ros

SMALL = ['--tasks', 'pick_red', '--demos', '2', '--steps', '30', '--episodes', '1']


def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    run = tmp_path / 'run'
    assert main(['demo', '--out', str(run), *SMALL]) == 0
    stages = json.loads((run / 'stages.json').read_text())
    assert [s for s in stages] == ['collect', 'train', 'evaluate', 'baseline', 'report']
    assert all(info['status'] == 'done' for info in stages.values()), stages
    assert len(list((run / 'data').glob('episode_*.hdf5'))) == 2
    assert (run / 'checkpoint' / 'checkpoint' / 'config.json').is_file()
    policy = json.loads((run / 'eval' / 'policy.json').read_text())
    baseline = json.loads((run / 'eval' / 'baseline.json').read_text())
    # same held-out seeds for both, clear of the demonstration seeds 0..1
    assert [e['seed'] for e in policy['episodes']] == [e['seed'] for e in baseline['episodes']] == [1000]
    assert policy['overall']['n'] == baseline['overall']['n'] == 1
    assert baseline['overall']['successes'] == 1
    assert policy['latency_ms']['p50'] > 0 and policy['control_rate_hz'] > 0
    html = (run / 'report' / 'index.html').read_text()
    assert 'pick_red' in html and (run / 'report' / 'report.md').is_file()
    out = capsys.readouterr().out
    assert 'vla demo finished' in out

    # a rerun reuses every completed stage; --redo reruns from the named stage on
    assert main(['demo', '--out', str(run), *SMALL]) == 0
    assert 'reusing its output' in capsys.readouterr().err
    assert json.loads((run / 'stages.json').read_text()) == stages
    assert main(['demo', '--out', str(run), *SMALL, '--redo', 'report']) == 0
    redone = json.loads((run / 'stages.json').read_text())
    assert redone['collect'] == stages['collect'] and redone['report']['status'] == 'done'


def test_demo_names_the_failing_stage(tmp_path, capsys):
    run = tmp_path / 'run'
    (run / 'data').mkdir(parents=True)
    (run / 'stages.json').write_text(json.dumps({'collect': {'status': 'done', 'seconds': 1.0}}))
    # collection "done" but no episodes: training must fail with a clear message, and stop there
    assert main(['demo', '--out', str(run), *SMALL]) != 0
    err = capsys.readouterr().err
    assert "stage 'train' failed" in err and 'rerun' in err
    stages = json.loads((run / 'stages.json').read_text())
    assert stages['train']['status'] == 'failed' and 'evaluate' not in stages


@pytest.mark.slow
def test_demo_with_two_training_seeds(tmp_path, capsys):
    """--seeds 2 end to end: two models trained on the demo's data, both evaluated on the same
    seeds, the spread and Welch's t-test in the summary and the report."""
    run = tmp_path / 'run'
    assert main(['demo', '--out', str(run), *SMALL, '--seeds', '2']) == 0
    stages = json.loads((run / 'stages.json').read_text())
    assert all(info['status'] == 'done' for info in stages.values()), stages
    assert stages['train']['command'].endswith('--seeds 2')
    for seed in (0, 1):
        assert (run / 'checkpoint' / f'seed_{seed}' / 'checkpoint' / 'config.json').is_file()
        one = json.loads((run / 'eval' / f'policy.seed_{seed}.json').read_text())
        assert [e['seed'] for e in one['episodes']] == [1000]
    assert json.loads((run / 'checkpoint' / 'seeds.json').read_text())['seeds'] == [0, 1]
    policy = json.loads((run / 'eval' / 'policy.json').read_text())
    assert policy['overall']['n'] == 2 and policy['training_seeds']['seeds'] == [0, 1]
    out = capsys.readouterr().out
    assert 'pooled over 2 training seeds' in out and 'training seeds 0, 1: success' in out
    assert 'min-max' in out and '95% CI of the mean' in out
    verdict = next(ln for ln in out.splitlines() if ln.strip().startswith('verdict'))
    assert 'Welch t on per-training-seed rates' in verdict
    md = (run / 'report' / 'report.md').read_text()
    assert '2 models trained with seeds 0, 1' in md and "Welch's t-test" in md
    # resumable as before: a rerun reuses every stage
    assert main(['demo', '--out', str(run), *SMALL, '--seeds', '2']) == 0
    assert json.loads((run / 'stages.json').read_text()) == stages
