"""Is policy B better than policy A?  Paired and unpaired tests of two success rates (ROS-free).

Two evaluations on the same seeds are *paired*: each episode of B has a twin in A that started
from the same state, and only the discordant pairs (one succeeded, the other did not) carry
information about the difference.  The tests and intervals (exact McNemar, Newcombe's paired and
unpaired intervals, Fisher's exact test, the sample sizes behind "underpowered") live in
:mod:`vla_bringup.comparison_stats` and are importable from here too; this module adds the
per-task comparison of two results, the verdicts, and

- :class:`SequentialMcNemar`: Wald's sequential probability ratio test on the discordant pairs,
  fixed before the run, that stops as soon as the evidence decides.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vla_bringup.comparison_stats import (PairedTable, fisher_exact, mcnemar_exact,
                                          mcnemar_sample_size, paired_difference_interval,
                                          two_proportion_sample_size,
                                          unpaired_difference_interval)
from vla_common.stats import wilson_interval

#: verdicts of :func:`verdict`
B_BETTER, A_BETTER, NO_DIFFERENCE, UNDERPOWERED = ('B better', 'A better', 'no difference detected',
                                                   'underpowered')


# -- verdicts --------------------------------------------------------------------------------
def verdict(p_value: float, interval: tuple[float, float], effect: float,
            alpha: float = 0.05) -> str:
    """B better / A better when the test rejects at ``alpha``; no difference detected when the
    interval of B - A lies inside +/-``effect``; otherwise underpowered."""
    if p_value < alpha:
        return B_BETTER if interval[0] + interval[1] > 0 else A_BETTER
    if -effect < interval[0] and interval[1] < effect:
        return NO_DIFFERENCE
    return UNDERPOWERED


@dataclass
class Comparison:
    """A against B on one task (or overall)."""

    name: str
    n_a: int
    successes_a: int
    n_b: int
    successes_b: int
    paired: bool
    p_value: float
    difference: float  # rate_b - rate_a
    ci95: tuple[float, float]
    verdict: str
    needed: int | None  # episodes (pairs) per policy that the stated effect needs at 80% power
    #                     (training seeds per recipe when either side has several)
    table: PairedTable | None = None
    test: str = ''  # '' = exact McNemar when paired, Fisher exact otherwise
    seeds_a: object = None  # comparison_seeds.SeedSpread of A when A has several training seeds
    seeds_b: object = None
    df: float | None = None  # degrees of freedom of a t-test

    @property
    def test_name(self) -> str:
        return self.test or ('exact McNemar' if self.paired else 'Fisher exact')

    def to_json(self) -> dict:
        out = {'n_a': self.n_a, 'successes_a': self.successes_a,
               'rate_a': round(self.successes_a / self.n_a, 4) if self.n_a else 0.0,
               'ci95_a': [round(v, 4) for v in wilson_interval(self.successes_a, self.n_a)],
               'n_b': self.n_b, 'successes_b': self.successes_b,
               'rate_b': round(self.successes_b / self.n_b, 4) if self.n_b else 0.0,
               'ci95_b': [round(v, 4) for v in wilson_interval(self.successes_b, self.n_b)],
               'paired': self.paired, 'test': self.test_name,
               'p_value': round(self.p_value, 6), 'difference': round(self.difference, 4),
               'difference_ci95': [round(v, 4) for v in self.ci95], 'verdict': self.verdict,
               'episodes_needed': self.needed if self.seeds_a is None and self.seeds_b is None
               else None}
        if self.seeds_a is not None or self.seeds_b is not None:
            out['training_seeds_needed'] = self.needed  # per recipe, for +/-effect
        if self.df is not None:
            out['df'] = round(self.df, 2)
        for side, spread in (('a', self.seeds_a), ('b', self.seeds_b)):
            if spread is not None:
                out[f'training_seeds_{side}'] = spread.to_json()
        if self.table is not None:
            out['table'] = {'both': self.table.both, 'a_only': self.table.a_only,
                            'b_only': self.table.b_only, 'neither': self.table.neither}
        return out


def compare_outcomes(name: str, a: Mapping[int, bool], b: Mapping[int, bool], effect: float = 0.2,
                     alpha: float = 0.05) -> Comparison:
    """Compare two sets of episode outcomes keyed by seed: paired on the seeds both have when they
    are the same seeds, unpaired otherwise."""
    if not a or not b:
        raise ValueError(f'{name}: both evaluations need episodes (got {len(a)} and {len(b)})')
    paired = set(a) == set(b)
    sa, sb = sum(map(bool, a.values())), sum(map(bool, b.values()))
    if paired:
        seeds = sorted(a)
        table = PairedTable.from_outcomes([a[s] for s in seeds], [b[s] for s in seeds])
        p = mcnemar_exact(table.a_only, table.b_only)
        ci = paired_difference_interval(table)
        result = verdict(p, ci, effect, alpha)
        needed = (mcnemar_sample_size(effect, table.discordant / table.n, alpha)
                  if result == UNDERPOWERED else None)
    else:
        table = None
        p = fisher_exact(sa, len(a), sb, len(b))
        ci = unpaired_difference_interval(sa, len(a), sb, len(b))
        result = verdict(p, ci, effect, alpha)
        needed = (two_proportion_sample_size((sa + sb) / (len(a) + len(b)), effect, alpha)
                  if result == UNDERPOWERED else None)
    return Comparison(name, len(a), sa, len(b), sb, paired, p, sb / len(b) - sa / len(a), ci,
                      result, needed, table)


def outcomes_by_task(results: Mapping) -> dict[str, dict[int, bool]]:
    """``{task: {seed: success}}`` from a results JSON's ``episodes`` list."""
    episodes = results.get('episodes')
    if not episodes:
        raise ValueError('the results JSON has no per-episode records ("episodes"); '
                         'evaluate again with this version of `vla evaluate`')
    if results.get('training_seeds'):
        raise ValueError('the results hold several training seeds (`vla evaluate --checkpoint OUT` of a '
                         '--seeds run), not one outcome per episode seed: compare them with `vla '
                         'compare` (across training seeds), or use one model\'s NAME.seed_S.json')
    out: dict[str, dict[int, bool]] = {}
    for ep in episodes:
        try:
            task, seed, success = str(ep['task']), int(ep['seed']), bool(ep['success'])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f'an episode record lacks task/seed/success: {ep!r}') from exc
        if seed in out.setdefault(task, {}):
            raise ValueError(f'task {task!r} has seed {seed} twice; one outcome per seed expected')
        out[task][seed] = success
    return out


def compare_results(a: Mapping, b: Mapping, effect: float = 0.2,
                    alpha: float = 0.05) -> list[Comparison]:
    """Per task both evaluations ran, then overall.  Results of several training seeds
    (``training_seeds``, see :mod:`vla_bringup.comparison_seeds`) are compared across training
    seeds (Welch's t on the per-seed rates); single models episode by episode
    (:func:`compare_episode_results`)."""
    if a.get('training_seeds') or b.get('training_seeds'):
        from vla_bringup.comparison_seeds import compare_seed_results
        return compare_seed_results(a, b, effect, alpha)
    return compare_episode_results(a, b, effect, alpha)


def compare_episode_results(a: Mapping, b: Mapping, effect: float = 0.2,
                            alpha: float = 0.05) -> list[Comparison]:
    """Per task both evaluations ran, then overall (tasks x seeds as the pairing key)."""
    ta, tb = outcomes_by_task(a), outcomes_by_task(b)
    common = [t for t in ta if t in tb]
    if not common:
        raise ValueError(f'the evaluations share no task (A: {sorted(ta)}, B: {sorted(tb)})')
    rows = [compare_outcomes(t, ta[t], tb[t], effect, alpha) for t in common]
    flat_a = {(t, s): v for t in common for s, v in ta[t].items()}
    flat_b = {(t, s): v for t in common for s, v in tb[t].items()}
    rows.append(compare_outcomes('overall', flat_a, flat_b, effect, alpha))
    return rows


# -- sequential --------------------------------------------------------------------------------
@dataclass
class SequentialMcNemar:
    """Wald's SPRT on the discordant pairs, two-sided, fixed before the run.

    Among discordant pairs, B is the one that succeeded with probability ``q``.  H0: q = 1/2 (no
    difference) against H+: q = ``odds / (1 + odds)`` (B better) and H-: q = ``1 / (1 + odds)``
    (A better), each one-sided at ``alpha / 2``.  It decides "B better" (or "A better") when its
    likelihood ratio reaches ``2 / alpha``: under H0 a likelihood ratio is a martingale, so by
    Ville's inequality it ever gets there with probability at most ``alpha / 2`` per side, and
    the type-I error stays below ``alpha`` however long the test runs (Wald's ``(1 - beta) /
    (alpha / 2)`` is only approximate).  It decides "no difference" when both ratios fall below
    Wald's ``beta / (1 - alpha / 2)``, and stops undecided at ``max_pairs``.  Call
    :meth:`update` with each new pair, in seed order; never on a peek.
    """

    odds: float = 3.0  # the odds ratio among discordant pairs the test is powered for
    alpha: float = 0.05
    beta: float = 0.2
    max_pairs: int = 100
    decision: str | None = field(default=None, init=False)
    pairs: int = field(default=0, init=False)
    a_only: int = field(default=0, init=False)
    b_only: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.odds > 1:
            raise ValueError(f'odds must be > 1, got {self.odds}')
        if not (0 < self.alpha < 1 and 0 < self.beta < 1):
            raise ValueError(f'alpha and beta must be in (0, 1), got {self.alpha}, {self.beta}')
        if self.max_pairs < 1:
            raise ValueError(f'max_pairs must be >= 1, got {self.max_pairs}')

    @property
    def upper(self) -> float:
        return math.log(2 / self.alpha)

    @property
    def lower(self) -> float:
        return math.log(self.beta / (1 - self.alpha / 2))

    def log_ratios(self) -> tuple[float, float]:
        """log LR of H+ and of H- against H0 for the discordant pairs seen so far."""
        q = self.odds / (1 + self.odds)
        plus = self.b_only * math.log(2 * q) + self.a_only * math.log(2 * (1 - q))
        minus = self.a_only * math.log(2 * q) + self.b_only * math.log(2 * (1 - q))
        return plus, minus

    def update(self, a_success: bool, b_success: bool) -> str | None:
        """Add one pair; the decision once there is one (then further pairs are refused)."""
        if self.decision is not None:
            raise RuntimeError(f'the test has already decided ({self.decision}); a sequential '
                               'test must not go on after its stopping rule fired')
        self.pairs += 1
        self.a_only += bool(a_success) and not b_success
        self.b_only += bool(b_success) and not a_success
        plus, minus = self.log_ratios()
        if plus >= self.upper:
            self.decision = B_BETTER
        elif minus >= self.upper:
            self.decision = A_BETTER
        elif plus <= self.lower and minus <= self.lower:
            self.decision = NO_DIFFERENCE
        elif self.pairs >= self.max_pairs:
            self.decision = UNDERPOWERED
        return self.decision

    def run(self, pairs: Iterable[tuple[bool, bool]]) -> str | None:
        """Feed pairs until the test decides; returns the decision (None if the pairs ran out)."""
        for a_success, b_success in pairs:
            if self.update(a_success, b_success) is not None:
                break
        return self.decision

    def rule(self) -> str:
        """The stopping rule in words, for the report (stated before the first episode)."""
        return (f"Wald SPRT on discordant pairs, two-sided: H0 q=0.5 vs q={self.odds:g}:1 either "
                f"way, alpha={self.alpha:g} (alpha/2 per side), power={1 - self.beta:g}, at most "
                f"{self.max_pairs} pairs; stop when log LR >= {self.upper:.3f} (better) or both "
                f"<= {self.lower:.3f} (no difference)")


@dataclass
class SequentialPlan:
    """``vla evaluate --until-decided --against A.json``: B's episodes on A's (task, seed) pairs,
    seed by seed across the tasks (so a run that stops early still covers every task alike),
    each pair fed to a :class:`SequentialMcNemar` fixed before the first episode."""

    reference: dict[tuple[str, int], bool]  # A's outcome of every (task, seed)
    order: list[tuple[str, int]]  # the pairs in the order they are evaluated
    test: SequentialMcNemar
    against: str = ''  # where A came from (the report names it)

    @classmethod
    def from_results(cls, results: Mapping, tasks: Sequence[str], seed: int, episodes: int,
                     against: str = '', odds: float = 3.0, alpha: float = 0.05,
                     power: float = 0.8) -> SequentialPlan:
        """The plan against evaluation ``results`` (A) for B's ``tasks`` and seeds ``seed ..
        seed + episodes - 1`` (at most), keeping the pairs A has."""
        outcomes = outcomes_by_task(results)
        missing = [t for t in tasks if t not in outcomes]
        if missing:
            raise ValueError(f'--against {against or "A"} has no episodes of task(s) {missing} '
                             f'(it has {sorted(outcomes)})')
        order = [(t, s) for s in range(seed, seed + episodes) for t in tasks if s in outcomes[t]]
        if not order:
            raise ValueError(f'--against {against or "A"} has none of the seeds {seed}..'
                             f'{seed + episodes - 1}: evaluate on the seeds it was evaluated on')
        reference = {(t, s): outcomes[t][s] for t, s in order}
        test = SequentialMcNemar(odds=odds, alpha=alpha, beta=1.0 - power, max_pairs=len(order))
        return cls(reference, order, test, against)

    def run(self, run_one) -> list:
        """Evaluate the pairs in order with ``run_one(task, seed) -> episode`` (anything with a
        ``success``) until the test decides; returns B's episodes."""
        episodes = []
        for task, seed in self.order:
            episode = run_one(task, seed)
            episodes.append(episode)
            if self.test.update(self.reference[(task, seed)], bool(episode.success)) is not None:
                break
        return episodes

    def summary(self) -> dict:
        """The ``sequential`` entry of the results JSON."""
        t = self.test
        return {'rule': t.rule(), 'against': self.against, 'decision': t.decision,
                'pairs': t.pairs, 'max_pairs': len(self.order), 'a_only': t.a_only,
                'b_only': t.b_only, 'odds': t.odds, 'alpha': t.alpha, 'power': 1.0 - t.beta,
                'saved_episodes': len(self.order) - t.pairs}
