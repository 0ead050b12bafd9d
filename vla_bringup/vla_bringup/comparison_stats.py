"""The tests and intervals of two success rates behind :mod:`vla_bringup.comparison` (ROS-free).

- :func:`mcnemar_exact`: exact (binomial) McNemar test on the discordant pairs;
- :func:`paired_difference_interval`: Newcombe's (1998) hybrid score interval for a difference of
  paired proportions (his method 10), built from the two Wilson intervals;
- :func:`fisher_exact` and :func:`unpaired_difference_interval` (Newcombe's method 10 for
  independent samples) when the seeds differ and the pairing is lost;
- :func:`mcnemar_sample_size` (Connor 1987) and :func:`two_proportion_sample_size`: the episodes a
  stated effect needs at 80% power, for the "underpowered" verdict;
- :func:`t_cdf` and :func:`t_quantile`: Student's t distribution for
  :mod:`vla_bringup.comparison_seeds` (Welch's t-test and the t interval over training seeds).

The tests and intervals of two success rates are also importable from
:mod:`vla_bringup.comparison`, the t distribution from :mod:`vla_bringup.comparison_seeds`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from vla_common.stats import wilson_interval


def _z(p: float) -> float:
    return NormalDist().inv_cdf(p)


def _binom_cdf(k: int, n: int, p: float = 0.5) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(0, k + 1))


# -- paired ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedTable:
    """The 2x2 table of paired outcomes: ``both``, ``a_only``, ``b_only``, ``neither`` succeeded."""

    both: int
    a_only: int
    b_only: int
    neither: int

    @classmethod
    def from_outcomes(cls, a: Sequence[bool], b: Sequence[bool]) -> PairedTable:
        if len(a) != len(b):
            raise ValueError(f'paired outcomes need equal lengths, got {len(a)} and {len(b)}')
        pairs = list(zip(map(bool, a), map(bool, b)))
        return cls(both=pairs.count((True, True)), a_only=pairs.count((True, False)),
                   b_only=pairs.count((False, True)), neither=pairs.count((False, False)))

    @property
    def n(self) -> int:
        return self.both + self.a_only + self.b_only + self.neither

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    @property
    def rate_a(self) -> float:
        return (self.both + self.a_only) / self.n if self.n else 0.0

    @property
    def rate_b(self) -> float:
        return (self.both + self.b_only) / self.n if self.n else 0.0


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against Binomial(a_only + b_only, 1/2)."""
    if a_only < 0 or b_only < 0:
        raise ValueError(f'discordant counts must be >= 0, got {a_only}, {b_only}')
    n = a_only + b_only
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * _binom_cdf(min(a_only, b_only), n))


def paired_difference_interval(table: PairedTable, z: float = 1.959964) -> tuple[float, float]:
    """95% interval of ``rate_b - rate_a`` for paired outcomes (Newcombe 1998, method 10)."""
    n = table.n
    if n == 0:
        return (-1.0, 1.0)
    pa, pb = table.rate_a, table.rate_b
    la, ua = wilson_interval(table.both + table.a_only, n, z)
    lb, ub = wilson_interval(table.both + table.b_only, n, z)
    # phi: correlation of the paired outcomes, with Newcombe's continuity correction of AD - BC
    # (A = both, B = a_only, C = b_only, D = neither).
    ad_bc = table.both * table.neither - table.a_only * table.b_only
    if ad_bc > 0:
        ad_bc = max(ad_bc - n / 2, 0.0)
    margins = ((table.both + table.a_only) * (table.b_only + table.neither)
               * (table.both + table.b_only) * (table.a_only + table.neither))
    phi = ad_bc / math.sqrt(margins) if margins > 0 else 0.0
    diff = pb - pa
    lower = diff - math.sqrt(max((pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2, 0.0))
    upper = diff + math.sqrt(max((ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2, 0.0))
    return (max(-1.0, lower), min(1.0, upper))


def mcnemar_sample_size(effect: float, discordant_rate: float, alpha: float = 0.05,
                        power: float = 0.8) -> int:
    """Pairs needed to detect ``rate_b - rate_a = effect`` (Connor 1987), given the expected
    share of discordant pairs (at least ``|effect|``)."""
    effect = abs(effect)
    if not 0 < effect <= 1:
        raise ValueError(f'effect must be in (0, 1], got {effect}')
    psi = min(1.0, max(discordant_rate, effect))
    za, zb = _z(1 - alpha / 2), _z(power)
    n = (za * math.sqrt(psi) + zb * math.sqrt(max(psi - effect ** 2, 0.0))) ** 2 / effect ** 2
    return math.ceil(n)


# -- unpaired --------------------------------------------------------------------------------
def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value for two independent success counts."""
    total, successes = n_a + n_b, successes_a + successes_b
    if total == 0:
        return 1.0

    def prob(k: int) -> float:
        return (math.comb(n_a, k) * math.comb(n_b, successes - k)) / math.comb(total, successes)

    lo, hi = max(0, successes - n_b), min(n_a, successes)
    observed = prob(successes_a)
    return min(1.0, sum(p for p in map(prob, range(lo, hi + 1)) if p <= observed * (1 + 1e-7)))


def unpaired_difference_interval(successes_a: int, n_a: int, successes_b: int, n_b: int,
                                 z: float = 1.959964) -> tuple[float, float]:
    """95% interval of ``rate_b - rate_a`` for independent samples (Newcombe 1998, method 10)."""
    pa = successes_a / n_a if n_a else 0.0
    pb = successes_b / n_b if n_b else 0.0
    la, ua = wilson_interval(successes_a, n_a, z)
    lb, ub = wilson_interval(successes_b, n_b, z)
    diff = pb - pa
    return (max(-1.0, diff - math.hypot(pb - lb, ua - pa)),
            min(1.0, diff + math.hypot(ub - pb, pa - la)))


def two_proportion_sample_size(rate: float, effect: float, alpha: float = 0.05,
                               power: float = 0.8) -> int:
    """Episodes per policy to detect ``effect`` around ``rate`` with independent samples."""
    effect = abs(effect)
    if not 0 < effect <= 1:
        raise ValueError(f'effect must be in (0, 1], got {effect}')
    p1 = min(max(rate - effect / 2, 0.0), 1.0 - effect)
    p2 = p1 + effect
    pbar = (p1 + p2) / 2
    za, zb = _z(1 - alpha / 2), _z(power)
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    return math.ceil(n / effect ** 2)


# -- Student's t distribution (real degrees of freedom; no scipy at run time) -------------------
def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom."""
    if df <= 0:
        raise ValueError(f'degrees of freedom must be > 0, got {df}')
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0 < p < 1:
        raise ValueError(f'p must be in (0, 1), got {p}')
    if p == 0.5:
        return 0.0
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > p:
        lo *= 2
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2
