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
