"""Paired and unpaired comparisons and the sequential test, against published values and
simulated policies with known success rates."""
import json
import random

import pytest

from vla_bringup.comparison import (A_BETTER, B_BETTER, NO_DIFFERENCE, UNDERPOWERED, PairedTable,
                                    SequentialMcNemar, compare_outcomes, compare_results,
                                    fisher_exact, mcnemar_exact, mcnemar_sample_size,
                                    paired_difference_interval, two_proportion_sample_size,
                                    unpaired_difference_interval)


def test_mcnemar_exact_hand_computed():
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def test_unpaired_interval_matches_newcombe_1998():
    # Newcombe (1998), Stat Med 17:873, Table II, method 10 (as rate_a - rate_b, so negated here)
    assert unpaired_difference_interval(48, 80, 56, 70) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert unpaired_difference_interval(3, 10, 9, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)
    assert unpaired_difference_interval(0, 10, 0, 20) == pytest.approx((-0.2775, 0.1611), abs=1e-4)


def test_sample_sizes_match_textbook_values():
    assert two_proportion_sample_size(0.5, 0.2) == 97  # 0.4 vs 0.6, alpha 0.05, power 0.8
    assert mcnemar_sample_size(0.2, 0.3) == 57  # Connor (1987)


def test_cross_check_with_scipy():
    stats = pytest.importorskip('scipy.stats', reason='scipy is only a cross-check')
    for b, c in [(1, 9), (3, 4), (0, 7), (12, 30)]:
        assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue)
    for sa, na, sb, nb in [(3, 10, 9, 10), (10, 10, 4, 10), (20, 25, 18, 25), (0, 5, 5, 5)]:
        expected = stats.fisher_exact([[sa, na - sa], [sb, nb - sb]]).pvalue
        assert fisher_exact(sa, na, sb, nb) == pytest.approx(expected)


def test_paired_interval_covers_the_true_difference():
    """Newcombe's paired interval keeps close to its 95% coverage on small paired samples."""
    rng = random.Random(0)
    for pa, pb, rho_share in [(0.5, 0.7, 0.5), (0.8, 0.9, 0.8), (0.3, 0.3, 0.3)]:
        covered, trials = 0, 600
        for _ in range(trials):
            a, b = [], []
            for _ in range(40):
                u = rng.random()
                a.append(u < pa)
                b.append(u < pb if rng.random() < rho_share else rng.random() < pb)
            low, high = paired_difference_interval(PairedTable.from_outcomes(a, b))
            covered += low <= pb - pa <= high
        assert covered / trials >= 0.92, (pa, pb, covered / trials)


def test_verdicts_per_task_and_overall():
    seeds = range(1000, 1020)
    a = {s: s % 2 == 0 for s in seeds}  # 10/20
    b = {s: True for s in seeds}  # 20/20: B wins every discordant pair
    (row,) = [r for r in compare_results(_results({'t': a}), _results({'t': b})) if r.name == 't']
    assert row.paired and row.table.b_only == 10 and row.table.a_only == 0
    assert row.verdict == B_BETTER and row.p_value == pytest.approx(2 / 1024)
    assert compare_outcomes('t', b, a).verdict == A_BETTER
    same = compare_outcomes('t', {s: True for s in range(400)}, {s: True for s in range(400)})
    assert same.verdict == NO_DIFFERENCE
    few = compare_outcomes('t', {1: True, 2: False}, {1: False, 2: True})
    assert few.verdict == UNDERPOWERED and few.needed > 2
    unpaired = compare_outcomes('t', {1: True, 2: False}, {3: True, 4: True})
    assert not unpaired.paired and unpaired.table is None


def _results(tasks):
    return {'policy': 'x', 'tasks': {t: {} for t in tasks},
            'episodes': [{'task': t, 'seed': s, 'success': v}
                         for t, outcomes in tasks.items() for s, v in outcomes.items()]}


def test_results_without_episodes_or_repeated_seeds_are_refused():
    with pytest.raises(ValueError, match='per-episode'):
        compare_results({'tasks': {}}, _results({'t': {1: True}}))
    bad = _results({'t': {1: True}})
    bad['episodes'].append({'task': 't', 'seed': 1, 'success': False})
    with pytest.raises(ValueError, match='twice'):
        compare_results(bad, bad)


def _simulate(rate_a, rate_b, test_kwargs, runs, seed):
    rng = random.Random(seed)
    decisions, sizes = [], []
    for _ in range(runs):
        test = SequentialMcNemar(**test_kwargs)
        while test.decision is None:
            u = rng.random()  # the same start state helps both policies alike (positive pairing)
            test.update(u < rate_a, u < rate_b if rng.random() < 0.5 else rng.random() < rate_b)
        decisions.append(test.decision)
        sizes.append(test.pairs)
    return decisions, sum(sizes) / runs


def test_sequential_test_error_rates_and_sample_size():
    kwargs = {'odds': 4.0, 'alpha': 0.05, 'beta': 0.2, 'max_pairs': 200}
    # H0 true: both policies succeed 60% of the time; a wrong "better" at most alpha.
    decisions, _ = _simulate(0.6, 0.6, kwargs, 1000, seed=1)
    false_claims = sum(d in (A_BETTER, B_BETTER) for d in decisions) / len(decisions)
    assert false_claims <= 0.05
    # H1 true (0.4 -> 0.8): decides "B better" at least with the stated power, never "A better",
    # and on average needs fewer pairs than the fixed-n McNemar design for the same effect.
    decisions, mean_pairs = _simulate(0.4, 0.8, kwargs, 1000, seed=2)
    assert sum(d == B_BETTER for d in decisions) / len(decisions) >= 0.8
    assert A_BETTER not in decisions
    assert mean_pairs < _fixed_design_pairs(q=0.8, discordant_rate=0.5 * 0.4 + 0.5 * 0.56)


def _fixed_design_pairs(q, discordant_rate, alpha=0.05, power=0.8):
    """Pairs of the fixed-n exact McNemar design powered for the same alternative."""
    from math import ceil, comb
    for n in range(1, 500):
        reject = [k for k in range(n + 1) if mcnemar_exact(n - k, k) < alpha]
        if sum(comb(n, k) * q ** k * (1 - q) ** (n - k) for k in reject) >= power:
            return ceil(n / discordant_rate)
    raise AssertionError('no fixed design found')


def test_sequential_test_never_goes_on_after_deciding():
    test = SequentialMcNemar(odds=3.0, max_pairs=5)
    while test.decision is None:
        test.update(False, False)
    assert test.decision == UNDERPOWERED and test.pairs == 5
    with pytest.raises(RuntimeError, match='already decided'):
        test.update(True, False)
    assert 'SPRT' in test.rule()
    with pytest.raises(ValueError):
        SequentialMcNemar(odds=1.0)


def test_vla_compare_command(tmp_path, capsys):
    from vla_bringup.cli import main
    seeds = range(1000, 1010)
    a, b = tmp_path / 'a.json', tmp_path / 'b.json'
    a.write_text(json.dumps(_results({'pick_red': {s: s < 1003 for s in seeds}})))
    b.write_text(json.dumps(_results({'pick_red': {s: True for s in seeds}})))
    out = tmp_path / 'cmp.json'
    assert main(['compare', str(a), str(b), '--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'B better' in text and 'A only' in text
    data = json.loads(out.read_text())
    row = data['comparisons'][0]['tasks']['pick_red']
    assert row['paired'] and row['table']['b_only'] == 7 and row['verdict'] == B_BETTER
    assert main(['compare', str(a)]) == 1
    assert main(['compare', str(a), str(tmp_path / 'missing.json')]) == 1
    assert 'no such file' in capsys.readouterr().err


def test_demo_states_its_verdict_with_the_paired_test(tmp_path):
    from vla_bringup.demo import baseline_verdict
    (tmp_path / 'eval').mkdir()
    seeds = range(1000, 1010)
    (tmp_path / 'eval' / 'baseline.json').write_text(json.dumps(_results({'t': {s: True for s in seeds}})))
    assert baseline_verdict(tmp_path) == ''
    (tmp_path / 'eval' / 'policy.json').write_text(
        json.dumps(_results({'t': {s: s < 1008 for s in seeds}})))
    text = baseline_verdict(tmp_path)
    assert 'paired on the same seeds' in text and 'n=10' in text and '80%' in text
    assert 'no difference detected' in text or 'underpowered' in text


def _episode_records(outcomes):
    """A results JSON with per-episode records ``{(task, seed): success}``."""
    return {'episodes': [{'task': t, 'seed': s, 'success': v} for (t, s), v in outcomes.items()]}


def test_sequential_plan_walks_a_seeds_across_tasks_and_stops_when_decided():
    from types import SimpleNamespace

    from vla_bringup.comparison import SequentialPlan
    a = _episode_records({**{('pick', s): False for s in range(1000, 1010)},
                  **{('stack', s): s % 2 == 0 for s in range(1000, 1004)}})
    plan = SequentialPlan.from_results(a, ['pick', 'stack'], seed=1000, episodes=10,
                                       against='a.json', odds=9.0, alpha=0.1)
    # seed by seed across the tasks, only the pairs A has, the whole plan fixed up front
    assert plan.order[:4] == [('pick', 1000), ('stack', 1000), ('pick', 1001), ('stack', 1001)]
    assert len(plan.order) == 14 and plan.test.max_pairs == 14
    ran = []

    def run_one(task, seed):  # B: succeeds everywhere
        ran.append((task, seed))
        return SimpleNamespace(success=True)

    episodes = plan.run(run_one)
    # B wins every pair A lost: log LR grows ln(1.8) per such pair and reaches ln(2 / 0.1)
    summary = plan.summary()
    assert summary['decision'] == B_BETTER and len(episodes) == summary['pairs'] == len(ran)
    assert summary['b_only'] == 6 and summary['a_only'] == 0
    assert ran == plan.order[:summary['pairs']] and summary['saved_episodes'] == 14 - len(ran)
    assert 'SPRT' in summary['rule'] and summary['against'] == 'a.json'
    with pytest.raises(ValueError, match=r"task\(s\) \['place'\]"):
        SequentialPlan.from_results(a, ['pick', 'place'], 1000, 10)
    with pytest.raises(ValueError, match='none of the seeds'):
        SequentialPlan.from_results(a, ['pick'], 2000, 10)
