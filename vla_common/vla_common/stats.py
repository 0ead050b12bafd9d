"""Success-rate statistics shared by every evaluation (ROS-free)."""
from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (defined for n = 0 as (0, 1))."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f'need 0 <= successes <= n, got successes={successes}, n={n}')
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_summary(successes: int, n: int) -> dict:
    """``{"n", "successes", "success_rate", "ci95"}`` as in the results JSON of DESIGN.md."""
    low, high = wilson_interval(successes, n)
    return {'n': n, 'successes': successes, 'success_rate': successes / n if n else 0.0,
            'ci95': [round(low, 4), round(high, 4)]}
