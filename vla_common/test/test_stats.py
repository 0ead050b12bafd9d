import pytest

from vla_common.stats import rate_summary, wilson_interval


@pytest.mark.parametrize('k, n, low, high', [
    (18, 20, 0.6990, 0.9721),   # reference values of the Wilson score interval
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
])
def test_wilson_interval_matches_reference(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-3) and hi == pytest.approx(high, abs=1e-3)


def test_rate_summary_and_bad_counts():
    assert rate_summary(3, 4)['success_rate'] == 0.75
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match='successes'):
        wilson_interval(5, 4)
