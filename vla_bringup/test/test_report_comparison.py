"""The report's comparison/sequential section and its latency-benchmark plot (issues 16 and 15),
rendered from small results, compare and benchmark JSON files written here."""
import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vla_bringup import cli
from vla_bringup.report import ReportError, write_report
from vla_bringup.report_inputs import load_run
from vla_bringup.report_sections import build_report
from vla_common.stats import rate_summary

SEEDS = range(1000, 1010)


def results(policy: str, outcomes: dict[str, list[bool]], **extra) -> dict:
    tasks = {t: {**rate_summary(sum(v), len(v)), 'estops': 0} for t, v in outcomes.items()}
    n = sum(len(v) for v in outcomes.values())
    return {'policy': policy, 'episodes_per_task': 10, 'seed': 1000, 'tasks': tasks,
            'overall': rate_summary(sum(sum(v) for v in outcomes.values()), n),
            'episodes': [{'task': t, 'seed': s, 'success': ok}
                         for t, v in outcomes.items() for s, ok in zip(SEEDS, v)], **extra}


BASELINE = {'pick_red': [True] * 10, 'stack': [True] * 9 + [False]}  # 19/20
POLICY = {'pick_red': [True] * 7 + [False] * 3, 'stack': [False, True] * 5}  # 12/20


def bench(mean_jerk: bool = True) -> dict:
    """benchmarks/bench_async_latency.py's results JSON for two modes and three latencies."""
    rows = {}
    for mode, wins in (('sync', [8, 6, 3]), ('crossfade', [8, 8, 7])):
        rows[mode] = {}
        for ms, k in zip(('0', '100', '200'), wins):
            row = {**rate_summary(k, 10), 'hold_share': 0.1 if mode == 'sync' else 0.0,
                   'max_jerk': 2.5, 'episodes': [{'task': 'pick_red', 'seed': 1000 + i} for i in range(10)]}
            if mean_jerk:
                row['mean_jerk'] = 0.12 if mode == 'crossfade' else 0.3 + int(ms) / 1000
            rows[mode][ms] = row
    return {'checkpoint': 'runs/demo/checkpoint', 'tasks': ['pick_red'], 'episodes_per_task': 10,
            'spike_ms': 0.0, 'replan': 'auto', 'results': rows}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run = tmp_path / 'run'
    (run / 'eval').mkdir(parents=True)
    (run / 'eval' / 'baseline.json').write_text(json.dumps(results('expert', BASELINE)))
    sequential = {'rule': 'Wald SPRT on discordant pairs, two-sided: H0 q=0.5 vs q=3:1 either way',
                  'against': 'eval/baseline.json', 'decision': 'A better', 'pairs': 20,
                  'max_pairs': 40, 'a_only': 8, 'b_only': 1, 'odds': 3.0, 'alpha': 0.05,
                  'power': 0.8, 'saved_episodes': 20}
    (run / 'eval' / 'policy.json').write_text(
        json.dumps(results('checkpoint:run/checkpoint', POLICY, sequential=sequential)))
    (run / 'eval' / 'async_latency.json').write_text(json.dumps(bench()))
    return run


def test_report_has_the_paired_comparison_the_sequential_rule_and_the_latency_plot(run: Path):
    report = build_report(load_run(run), created='2026-01-01T00:00:00+00:00')
    ids = [s.id for s in report.sections]
    assert ids.index('results') < ids.index('comparison') < ids.index('async_latency')
    assert 'async_latency' in [f.name for f in report.figures]
    html_path, md_path = write_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    # the baseline (A) against the policy (B): both 11 (7 picks, 4 stacks), A only 8 (3 picks,
    # 5 stacks), B only 1 (the stack the baseline failed), neither 0; exact McNemar on 8 vs 1
    from vla_bringup.comparison import mcnemar_exact
    p = mcnemar_exact(8, 1)
    overall = next(ln for ln in md.splitlines() if ln.startswith('| overall |') and 'McNemar' in ln)
    assert '19/20 (95%)' in overall and '12/20 (60%)' in overall and f'{p:.3g}' in overall
    assert 'exact McNemar' in overall and '11 / 8 / 1 / 0' in overall and 'A better' in overall
    # the 2x2 table of the overall pairs
    assert '| A succeeded | 11 | 8 | 19 |' in md and '| A failed | 1 | 0 | 1 |' in md
    assert '| all pairs | 12 | 8 | 20 |' in md
    # the sequential rule, stated as fixed before the run, and its decision
    assert 'fixed and printed before the first episode' in md
    assert 'Wald SPRT on discordant pairs' in md and 'A better after 20 of 40 episode pairs' in md
    assert 'Episodes saved**: 20' in md
    # the latency benchmark: a table per mode and latency and the figure, in both files
    assert '| crossfade | 200 | 7/10 (70%) |' in md and '| sync | 200 | 3/10 (30%) |' in md
    assert '](figures/async_latency.png)' in md and (run / 'report' / 'figures' / 'async_latency.png').is_file()
    pngs = [base64.b64decode(m) for m in re.findall(
        r'alt="Success and mean jerk against injected latency" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
    assert len(pngs) == 1
    image = Image.open(io.BytesIO(pngs[0]))
    assert image.width > 600 and np.asarray(image.convert('L')).std() > 5
    assert '<h2>Is the difference real? Paired comparison and sequential test</h2>' in page
    assert '<td>A succeeded</td><td>11</td><td>8</td><td>19</td>' in page


def test_a_compare_json_of_the_run_is_shown_instead(run: Path, tmp_path: Path):
    from vla_bringup.cli import main
    eval_dir = run / 'eval'
    assert main(['compare', str(eval_dir / 'baseline.json'), str(eval_dir / 'policy.json'),
                 '--effect', '0.3', '--json', str(eval_dir / 'compare.json')]) == 0
    _, md_path = write_report(run)
    md = md_path.read_text()
    assert 'From eval/compare.json (`vla compare`)' in md and '±0.3' in md
    assert 'computed from eval/baseline.json' not in md


def test_several_training_seeds_show_their_spread_and_compare_with_welch(tmp_path: Path):
    from vla_bringup.comparison_seeds import combine_training_seeds
    run = tmp_path / 'run'
    (run / 'eval').mkdir(parents=True)
    (run / 'eval' / 'baseline.json').write_text(json.dumps(results('expert', BASELINE)))
    per_seed = [(s, results(f'seed_{s}', {'pick_red': [i < wins for i in range(10)],
                                         'stack': [i < wins - 2 for i in range(10)]}))
                for s, wins in ((0, 8), (1, 6), (2, 7))]
    (run / 'eval' / 'policy.json').write_text(json.dumps(combine_training_seeds(per_seed, 'three seeds')))
    _, md_path = write_report(run)
    md = md_path.read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith('| pick_red | 80% / 60% / 70% |'))
    assert '| 70% | 0.10 | 60% – 80% |' in row
    assert 'Welch t on per-training-seed rates' in md and 'A: one model' in md


def test_latency_bench_given_on_the_command_line_and_bad_ones(run: Path, tmp_path: Path, capsys):
    (run / 'eval' / 'async_latency.json').unlink()
    old = tmp_path / 'old_bench.json'
    old.write_text(json.dumps(bench(mean_jerk=False)))  # an older bench: max jerk only
    assert cli.main(['report', str(run), '--latency-bench', str(old)]) == 0
    md = (run / 'report' / 'report.md').read_text()
    assert 'old_bench.json' in md and '| crossfade | 0 | 8/10 (80%) | [0.49, 0.94] | 0.0% | — | 2.50 |' in md
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'results': {'sync': {'fast': {'n': 1, 'successes': 1}}}}))
    with pytest.raises(ReportError, match='latency in ms'):
        write_report(run, latency_bench=bad)
    assert cli.main(['report', str(run), '--latency-bench', str(tmp_path / 'none.json')]) == 1
    assert 'does not exist' in capsys.readouterr().err
    write_report(run)
    assert 'No latency benchmark' in (run / 'report' / 'report.md').read_text()
