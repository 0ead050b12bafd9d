"""Training-seed variance: the spread of K models' success, its t interval, the combined results
JSON, and Welch's t-test over training seeds in `vla compare`, on hand-computed cases (scipy, where
installed, only as a cross-check)."""
import json
import math

import pytest

from vla_bringup.comparison import B_BETTER, UNDERPOWERED, compare_results
from vla_bringup.comparison_seeds import (WELCH, combine_training_seeds, seed_spread, t_cdf,
                                          t_quantile, training_spreads, welch_comparison)


def test_t_distribution_hand_computed():
    # tables: t_{0.975} with 1, 2, 4, 30 degrees of freedom
    for df, value in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (30, 2.0423)]:
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    # closed forms: df 1 is Cauchy, df 2 is 1/2 + t / (2 sqrt(2 + t^2))
    assert t_cdf(1.0, 1) == pytest.approx(0.75)
    assert t_cdf(1.5, 2) == pytest.approx(0.5 + 1.5 / (2 * math.sqrt(2 + 2.25)))
    assert t_cdf(-1.5, 2) == pytest.approx(1 - t_cdf(1.5, 2))
    assert t_quantile(0.5, 7) == 0.0


def test_t_distribution_cross_check_with_scipy():
    stats = pytest.importorskip('scipy.stats', reason='scipy is only a cross-check')
    for df in (1, 2, 3.7, 9, 55.5):
        for t in (-3.0, -0.4, 0.8, 2.5, 6.0):
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-10)
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-8)


def test_seed_spread_hand_computed():
    spread = seed_spread({0: (6, 10), 1: (8, 10), 2: (7, 10)})  # 60%, 80%, 70%
    assert spread.rates == pytest.approx([0.6, 0.8, 0.7])
    assert spread.mean == pytest.approx(0.7) and spread.std == pytest.approx(0.1)
    # 0.7 +/- t_{0.975, 2} * 0.1 / sqrt(3) = 0.7 +/- 0.24841
    assert spread.ci95() == pytest.approx((0.45159, 0.94841), abs=1e-5)
    # the binomial noise alone, mean of r(1-r)/(n-1) = 0.61 / 27, exceeds the spread's 0.01
    assert spread.between_seed_std == 0.0
    wide = seed_spread({0: (10, 100), 1: (50, 100), 2: (90, 100)})
    within = (0.09 + 0.25 + 0.09) / 99 / 3
    assert wide.between_seed_std == pytest.approx(math.sqrt(0.16 - within))
    data = spread.to_json()
    assert data['min'] == 0.6 and data['max'] == 0.8 and data['ci95_mean'] == [0.4516, 0.9484]
    assert 'Student t' in data['method']
    one = seed_spread({3: (7, 10)})  # one seed: no training-seed variance known, its Wilson interval
    assert one.std == 0.0 and one.ci95() == pytest.approx((0.3968, 0.8922), abs=1e-4)


def test_welch_over_training_seeds_hand_computed():
    a = seed_spread({0: (20, 100), 1: (40, 100), 2: (30, 100)})  # mean 0.3, sd 0.1
    b = seed_spread({0: (60, 100), 1: (80, 100), 2: (70, 100)})  # mean 0.7, sd 0.1
    row = welch_comparison('t', a, (90, 300), b, (210, 300))
    # se = sqrt(0.01 / 3 * 2) = 0.08165, t = 4.899, Welch df = 4
    assert row.difference == pytest.approx(0.4) and row.df == pytest.approx(4.0)
    assert row.ci95 == pytest.approx((0.4 - 2.776445 * 0.0816497, 0.4 + 2.776445 * 0.0816497), abs=1e-5)
    assert row.p_value == pytest.approx(2 * (1 - t_cdf(0.4 / 0.0816497, 4)), rel=1e-5)
    assert row.p_value == pytest.approx(0.008050, abs=1e-5)
    assert row.verdict == B_BETTER and row.test == WELCH and row.needed is None
    # the same difference from noisier training seeds: underpowered, 16 seeds per recipe needed
    # for +/-0.2 at 80% power: 2 * (1.95996 + 0.84162)^2 * 0.04 / 0.2^2 = 15.7
    noisy_a = seed_spread({0: (50, 100), 1: (70, 100), 2: (30, 100)})
    noisy_b = seed_spread({0: (60, 100), 1: (80, 100), 2: (40, 100)})
    row = welch_comparison('t', noisy_a, (150, 300), noisy_b, (180, 300))
    assert row.verdict == UNDERPOWERED and row.needed == 16
    # three lucky 10/10 seeds do not make a zero variance: floored at the binomial variance
    lucky = welch_comparison('t', seed_spread({0: (9, 10), 1: (9, 10), 2: (9, 10)}), (27, 30),
                             seed_spread({0: (10, 10), 1: (10, 10), 2: (10, 10)}), (30, 30))
    assert math.isfinite(lucky.p_value) and lucky.p_value > 0.05
    # a single model (the scripted baseline) against three seeds: its binomial variance only
    single = welch_comparison('t', None, (28, 30), b, (210, 300))
    p = 30 / 34
    assert single.df == pytest.approx((p * (1 - p) / 30 + 0.01 / 3) ** 2
                                      / ((p * (1 - p) / 30) ** 2 / 29 + (0.01 / 3) ** 2 / 2))


def test_welch_cross_check_with_scipy():
    stats = pytest.importorskip('scipy.stats', reason='scipy is only a cross-check')
    rates_a, rates_b = [0.2, 0.45, 0.3, 0.35], [0.6, 0.8, 0.5]
    a = seed_spread({i: (round(r * 100), 100) for i, r in enumerate(rates_a)})
    b = seed_spread({i: (round(r * 100), 100) for i, r in enumerate(rates_b)})
    row = welch_comparison('t', a, (0, 1), b, (0, 1))
    expected = stats.ttest_ind(rates_b, rates_a, equal_var=False)
    assert row.p_value == pytest.approx(expected.pvalue, rel=1e-8)


def _results(policy, outcomes, seed=1000):
    """A results JSON of one model: ``{task: [success of seed 1000, 1001, ...]}``."""
    tasks = {t: {'n': len(v), 'successes': sum(v), 'success_rate': sum(v) / len(v),
                 'ci95': [0, 1], 'mean_reward': 0.5, 'mean_length': 100.0, 'estops': 0,
                 'timeouts': 0} for t, v in outcomes.items()}
    n = sum(t['n'] for t in tasks.values())
    k = sum(t['successes'] for t in tasks.values())
    return {'policy': policy, 'runner': 'ros', 'episodes_per_task': 4, 'seed': seed, 'tasks': tasks,
            'overall': {'n': n, 'successes': k, 'success_rate': k / n, 'ci95': [0, 1], 'estops': 0,
                        'timeouts': 0},
            'latency_ms': {'p50': 5.0, 'p99': 6.0, 'samples': [5.0, 6.0]}, 'control_rate_hz': 30.0,
            'episodes': [{'task': t, 'seed': seed + i, 'success': s}
                         for t, v in outcomes.items() for i, s in enumerate(v)]}


def test_combine_training_seeds_pools_episodes_and_states_the_spread():
    per_seed = [(0, _results('checkpoint:out/seed_0/checkpoint', {'pick': [1, 1, 0, 0], 'stack': [1, 0, 0, 0]})),
                (1, _results('checkpoint:out/seed_1/checkpoint', {'pick': [1, 1, 1, 1], 'stack': [1, 1, 0, 0]}))]
    combined = combine_training_seeds(per_seed, policy='checkpoint:out (2 training seeds)')
    assert combined['tasks']['pick']['n'] == 8 and combined['tasks']['pick']['successes'] == 6
    assert combined['overall']['successes'] == 9 and combined['overall']['n'] == 16
    assert combined['tasks']['pick']['ci95'] == pytest.approx([0.4093, 0.9285], abs=1e-4)  # Wilson 6/8
    spread = combined['training_seeds']['tasks']['overall']
    assert spread['rates'] == [0.375, 0.75] and spread['mean'] == pytest.approx(0.5625)
    assert spread['min'] == 0.375 and spread['max'] == 0.75
    # mean +/- t_{0.975, 1} * sd / sqrt(2), sd = 0.375 / sqrt(2): clipped to [0, 1]
    assert spread['ci95_mean'] == [0.0, 1.0]
    assert len(combined['episodes']) == 16
    assert {e['training_seed'] for e in combined['episodes']} == {0, 1}
    assert combined['latency_ms']['n'] == 4 and combined['control_rate_hz'] == 30.0
    # each model's simulator timing and controller overruns add up
    for i, (_, r) in enumerate(per_seed):
        r['simulation'] = {'mode': 'lockstep', 'timeouts': 3 + i, 'ticks': 100, 'silent': {'/cmd': 3 + i}}
        r['controller'] = {'overruns': i, 'overruns_per_minute': 0.5 * i}
    merged = combine_training_seeds(per_seed, policy='x')
    assert merged['simulation'] == {'mode': 'lockstep', 'timeouts': 7, 'ticks': 200, 'silent': {'/cmd': 7}}
    assert merged['controller'] == {'overruns': 1, 'overruns_per_minute': 0.5}
    assert set(training_spreads(combined)) == {'pick', 'stack', 'overall'}
    other = _results('x', {'pick': [1, 1, 1, 1], 'stack': [1, 1, 0, 0]}, seed=2000)
    with pytest.raises(ValueError, match='same --tasks, --episodes and --seed'):
        combine_training_seeds([per_seed[0], (1, other)], policy='x')
    with pytest.raises(ValueError, match='repeat'):
        combine_training_seeds([per_seed[0], per_seed[0]], policy='x')


def _three_seeds(rates, n=20):
    per_seed = [(s, _results(f'seed_{s}', {'pick': [i < round(r * n) for i in range(n)]}))
                for s, r in enumerate(rates)]
    return combine_training_seeds(per_seed, policy='three seeds')


def test_compare_uses_both_sources_of_variance_for_several_training_seeds(tmp_path, capsys):
    a, b = _three_seeds([0.3, 0.35, 0.25]), _three_seeds([0.9, 0.85, 0.95])
    rows = compare_results(a, b)
    assert [r.name for r in rows] == ['pick', 'overall']
    assert all(r.test == WELCH and r.verdict == B_BETTER for r in rows)
    assert rows[-1].seeds_a.k == 3 and rows[-1].to_json()['training_seeds_b']['mean'] == 0.9
    # the baseline (one model, no training seeds) against three seeds: Welch with its binomial variance
    baseline = _results('expert', {'pick': [True] * 20})
    (row, _) = compare_results(baseline, a)
    assert row.seeds_a is None and row.test == WELCH and row.verdict == 'A better'
    # two single models still compare episode by episode (paired McNemar)
    (row, _) = compare_results(baseline, _results('one', {'pick': [True] * 10 + [False] * 10}))
    assert row.paired and row.test_name == 'exact McNemar'
    # vla compare prints the method and each seed's rate
    from vla_bringup.cli import main
    pa, pb = tmp_path / 'a.json', tmp_path / 'b.json'
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert main(['compare', str(pa), str(pb), '--json', str(tmp_path / 'cmp.json')]) == 0
    out = capsys.readouterr().out
    assert 'Welch' in out and 'B: 90% 85% 95%' in out
    data = json.loads((tmp_path / 'cmp.json').read_text())['comparisons'][0]['tasks']['overall']
    assert data['test'] == WELCH and data['training_seeds_a']['rates'] == [0.3, 0.35, 0.25]


def test_vla_evaluate_takes_the_out_dir_of_a_seeds_run(tmp_path, monkeypatch, capsys):
    """`vla evaluate --checkpoint OUT` of `vla train --seeds 2`: each model on the same seeds, the
    per-seed files beside --json, the combined JSON with the spread (the ROS runs stubbed)."""
    import vla_bringup.evaluation
    from vla_bringup.cli import main
    out = tmp_path / 'train'
    for s in (7, 8):
        (out / f'seed_{s}' / 'checkpoint').mkdir(parents=True)
        (out / f'seed_{s}' / 'checkpoint' / 'config.json').write_text('{}')
    (out / 'seeds.json').write_text(json.dumps(
        {'seeds': [7, 8], 'runs': [{'seed': s, 'checkpoint': f'seed_{s}/checkpoint'} for s in (7, 8)]}))
    calls = []

    def fake_evaluate(policy, checkpoint, tasks, episodes, seed, **_):
        calls.append((checkpoint, tasks, episodes, seed))
        wins = 3 if 'seed_7' in checkpoint else 1
        return _results(f'checkpoint:{checkpoint}', {t: [i < wins for i in range(episodes)] for t in tasks}, seed)

    monkeypatch.setattr(vla_bringup.evaluation, 'evaluate', fake_evaluate)
    result = tmp_path / 'eval' / 'policy.json'
    assert main(['evaluate', '--checkpoint', str(out), '--tasks', 'pick_red', '--episodes', '4',
                 '--seed', '1000', '--json', str(result)]) == 0
    assert [c[0] for c in calls] == [str(out / 'seed_7' / 'checkpoint'), str(out / 'seed_8' / 'checkpoint')]
    assert all(c[1:] == (['pick_red'], 4, 1000) for c in calls)
    combined = json.loads(result.read_text())
    assert combined['training_seeds']['seeds'] == [7, 8]
    assert combined['training_seeds']['tasks']['pick_red']['rates'] == [0.75, 0.25]
    assert combined['overall']['n'] == 8 and combined['overall']['successes'] == 4
    assert json.loads((tmp_path / 'eval' / 'policy.seed_8.json').read_text())['overall']['successes'] == 1
    text = capsys.readouterr().out
    assert 'training seeds 7, 8' in text and 'pooled' in text
    # sequential evaluation takes one checkpoint
    assert main(['evaluate', '--checkpoint', str(out), '--until-decided', '--against', str(result)]) == 1
    assert 'evaluates one checkpoint' in capsys.readouterr().err
    (out / 'seeds.json').write_text(json.dumps({'runs': [{'seed': 9, 'checkpoint': 'seed_9/checkpoint'}]}))
    assert main(['evaluate', '--checkpoint', str(out)]) == 1
    assert 'do not exist' in capsys.readouterr().err


def test_combining_files_evaluated_one_by_one(tmp_path, capsys):
    from vla_bringup.comparison_seeds import main
    paths = []
    for s, wins in ((3, 2), (4, 4)):
        path = tmp_path / f'seed_{s}.json'
        path.write_text(json.dumps(_results(f'checkpoint:out/seed_{s}/checkpoint',
                                            {'pick': [i < wins for i in range(4)]})))
        paths.append(str(path))
    assert main([*paths, '--out', str(tmp_path / 'all.json')]) == 0
    combined = json.loads((tmp_path / 'all.json').read_text())
    assert combined['training_seeds']['seeds'] == [3, 4]
    assert combined['training_seeds']['tasks']['overall']['rates'] == [0.5, 1.0]
    assert main([str(tmp_path / 'missing.json'), '--out', str(tmp_path / 'x.json')]) == 1
