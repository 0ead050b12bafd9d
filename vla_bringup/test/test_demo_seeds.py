"""`vla demo --seeds K` without ROS: the commands its stages run, and the stages themselves with the
simulator's episodes faked (collect and train write what theirs would; `vla evaluate` and `vla
report` are the real commands, only their ROS episode runner returns fixed outcomes), so the
multi-seed results JSON, the summary, the verdict and the report come from the real code.  The
real end to end `--seeds 2` demo is test_demo.py's slow test."""
import json
from pathlib import Path

import pytest

from vla_bringup import cli
from vla_bringup.demo import stage_commands
from vla_common.evaluation import Episode, latency_summary, summarize

SMALL = ['--tasks', 'pick_red', '--demos', '2', '--steps', '30', '--episodes', '4']
# successes on evaluation seeds 1000..1003 of each trained model, and of the scripted expert
WINS = {0: [True, True, True, False], 1: [True, False, False, False]}


def parse(*argv: str):
    return cli.build_parser().parse_args(['demo', *argv])


def test_seeds_add_only_the_train_flag(tmp_path: Path):
    run = tmp_path / 'run'
    one = stage_commands(parse(), run)
    # the default demo runs the commands it always ran
    assert one['train'] == ['train', '--data', str(run / 'data'), '--out', str(run / 'checkpoint'),
                            '--preset', 'cpu', '--steps', '10000', '--max-minutes', '10.5']
    assert stage_commands(parse('--seeds', '1'), run) == one
    three = stage_commands(parse('--seeds', '3', '--quick'), run)
    quick = stage_commands(parse('--quick'), run)
    # --seeds K: `vla train --seeds K` with the per-model budget; `vla evaluate --checkpoint` of
    # the same directory evaluates every model on the same seeds; nothing else changes
    assert three['train'] == [*quick['train'], '--seeds', '3']
    assert three['train'][three['train'].index('--max-minutes') + 1] == '3.0'
    assert {k: v for k, v in three.items() if k != 'train'} == {k: v for k, v in quick.items() if k != 'train'}


def test_demo_help_says_the_budget_is_per_model(capsys):
    with pytest.raises(SystemExit):
        cli.main(['demo', '--help'])
    assert 'K times as long' in ' '.join(capsys.readouterr().out.split())


@pytest.fixture
def fake_stages(monkeypatch):
    """collect and train as files on disk; the ROS episode runner of `vla evaluate` as fixed
    outcomes; every other part of `vla evaluate` and `vla report` real."""
    calls: list[list[str]] = []

    def fake_evaluate(policy, checkpoint, tasks, episodes, seed, rtf, episode_timeout,
                      video_dir=None, video_root=None, sequential=None, image_size=None):
        model = Path(checkpoint or '').parent.name  # seed_<S> of a --seeds run
        wins = ([True] * episodes if checkpoint is None
                else WINS[int(model[5:]) if model.startswith('seed_') else 0])
        results = [Episode(task, seed + i, wins[i], 1.0 if wins[i] else 0.2, 50, estops=0)
                   for task in tasks for i in range(episodes)]
        return summarize(results, policy=policy or f'checkpoint:{checkpoint}', runner='ros',
                         episodes_per_task=episodes, seed=seed,
                         latency_ms=latency_summary([20.0, 22.0, 25.0]), control_rate_hz=10.0)

    monkeypatch.setattr('vla_bringup.evaluation.evaluate', fake_evaluate)

    def invoke(argv: list[str]) -> int:
        calls.append(list(argv))
        if argv[0] == 'collect':
            Path(argv[argv.index('--out') + 1]).mkdir(parents=True, exist_ok=True)
            return 0
        if argv[0] == 'train':  # what `vla train [--seeds K]` leaves in OUT
            out = Path(argv[argv.index('--out') + 1])
            k = int(argv[argv.index('--seeds') + 1]) if '--seeds' in argv else 1
            runs = []
            for s in range(k):
                model = out / f'seed_{s}' if k > 1 else out
                (model / 'checkpoint').mkdir(parents=True, exist_ok=True)
                (model / 'checkpoint' / 'config.json').write_text('{}')
                (model / 'metrics.jsonl').write_text(
                    '\n'.join(json.dumps({'step': i, 'loss': 1.0 / (i + 1)}) for i in range(3)))
                runs.append({'seed': s, 'run': f'seed_{s}', 'checkpoint': f'seed_{s}/checkpoint'})
            if k > 1:
                (out / 'seeds.json').write_text(json.dumps({'seeds': list(range(k)), 'runs': runs}))
            return 0
        return cli.main(argv)

    return invoke, calls


def test_demo_with_two_seeds_reports_their_spread_and_welch(tmp_path: Path, fake_stages, capsys):
    from vla_bringup.demo import run as run_demo
    invoke, calls = fake_stages
    run = tmp_path / 'run'
    assert run_demo(parse('--out', str(run), *SMALL, '--seeds', '2'), [], invoke) == 0
    stages = json.loads((run / 'stages.json').read_text())
    assert all(info['status'] == 'done' for info in stages.values()), stages
    assert stages['train']['command'].endswith('--seeds 2')
    # both models evaluated by the real `vla evaluate --checkpoint RUN/checkpoint`, on the same seeds
    for s in (0, 1):
        one = json.loads((run / 'eval' / f'policy.seed_{s}.json').read_text())
        assert [e['seed'] for e in one['episodes']] == [1000, 1001, 1002, 1003]
    policy = json.loads((run / 'eval' / 'policy.json').read_text())
    spread = policy['training_seeds']['tasks']['overall']
    assert spread['seeds'] == [0, 1] and spread['rates'] == [0.75, 0.25] and spread['mean'] == 0.5
    assert policy['overall']['n'] == 8 and policy['overall']['successes'] == 4

    out = capsys.readouterr().out
    summary = out[out.index('vla demo finished'):]
    policy_line = next(ln for ln in summary.splitlines() if ln.strip().startswith('policy'))
    assert 'success 4/8 pooled over 2 training seeds (50%, 95% CI' in policy_line
    seeds_line = next(ln for ln in summary.splitlines() if ln.strip().startswith('seeds'))
    low, high = spread['ci95_mean']
    assert ('training seeds 0, 1: success 75% / 25%, mean 50%, min-max 25%-75%, '
            f'95% CI of the mean {low:.2f}-{high:.2f}') in seeds_line
    verdict = next(ln for ln in summary.splitlines() if ln.strip().startswith('verdict'))
    assert 'Welch t on per-training-seed rates' in verdict and 'n=8 episodes of 2 training seeds' in verdict
    assert 'reaches 50% of the baseline' in verdict

    md = (run / 'report' / 'report.md').read_text()
    assert 'pooled over 2 training seeds (mean over the seeds 50.0%' in md
    assert '| overall | 75% / 25% | 50% |' in md  # the spread table beside the pooled intervals
    assert "Welch's t-test on the per-seed success rates" in md and "Fisher's exact" not in md
    assert 'checkpoint/seed_0/metrics.jsonl' in md  # the training log of the first model

    # a rerun reuses every stage; another K must retrain explicitly, and a single model left in
    # RUN/checkpoint is not evaluated in place of K new ones
    calls.clear()
    assert run_demo(parse('--out', str(run), *SMALL, '--seeds', '2'), [], invoke) == 0
    assert calls == [] and json.loads((run / 'stages.json').read_text()) == stages
    capsys.readouterr()
    assert cli.main(['demo', '--out', str(run), *SMALL]) == 1
    err = capsys.readouterr().err
    assert 'trained 2 model(s)' in err and '--redo train' in err and '--seeds 2' in err
    assert cli.main(['demo', '--out', str(run), *SMALL, '--seeds', '0']) == 1
    assert '--seeds must be >= 1' in capsys.readouterr().err

    (run / 'checkpoint' / 'checkpoint').mkdir()
    assert cli.main(['demo', '--out', str(run), *SMALL, '--seeds', '3', '--redo', 'train']) == 1
    assert 'holds the single model of an earlier run' in capsys.readouterr().err
    assert json.loads((run / 'stages.json').read_text()) == stages


def test_demo_with_one_seed_keeps_its_summary(tmp_path: Path, fake_stages, capsys):
    from vla_bringup.demo import run as run_demo
    invoke, calls = fake_stages
    run = tmp_path / 'run'
    assert run_demo(parse('--out', str(run), *SMALL), [], invoke) == 0
    assert '--seeds' not in calls[1] and 'training_seeds' not in (run / 'eval' / 'policy.json').read_text()
    summary = capsys.readouterr().out
    assert '  policy    success 3/4 (75%, 95% CI 0.30-0.95), 0 emergency stop(s)' in summary
    assert 'pooled over' not in summary and '\n  seeds' not in summary
    assert 'n=4, paired on the same seeds, exact McNemar' in summary
