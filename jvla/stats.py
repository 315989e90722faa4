"""Success-rate statistics: Wilson score intervals and the paper's per-category averages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Returns ``(low, high)`` in ``[0, 1]``; ``(0.0, 1.0)`` when ``n == 0``. Unlike the normal
    approximation it stays inside [0, 1] and is sensible at 0/n and n/n, which matter here
    (tiny models often score 0 or all).
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, found successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact bounds at the edges (the formula gives them up to rounding error)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


Z80 = 0.8416212335729143  # one-sided 80 % normal quantile (power)


def detectable_difference(
    n1: int, n2: int, base_rate: float = 0.5, z_alpha: float = Z95, z_power: float = Z80
) -> float:
    """Smallest difference of two success rates that a two-sided two-proportion z-test at 5 %
    detects with 80 % power, with ``n1`` and ``n2`` episodes (normal approximation,
    ``(z_a + z_b) * sqrt(p (1 - p) (1/n1 + 1/n2))``; ``base_rate`` 0.5 is the worst case).
    Returns a fraction in (0, 1]; 1.0 when either ``n`` is 0.

    E.g. 20 vs 20 episodes: 0.44; 40 vs 40: 0.31; 100 vs 100: 0.20.
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    p = min(max(base_rate, 0.0), 1.0)
    return min(1.0, (z_alpha + z_power) * math.sqrt(max(p * (1 - p), 1e-12) * (1 / n1 + 1 / n2)))


def category_average(rates: Mapping[str, float], categories: Mapping[str, str]) -> dict[str, float]:
    """Mean success rate per category over **all** its tasks.

    # NOTE(paper Table 1): a category's "Avg." is the mean over all tasks of the category
    # (at least 5), not only over the columns shown.

    Args:
        rates: task name -> success rate.
        categories: task name -> category.
    """
    by_cat: dict[str, list[float]] = {}
    for task, rate in rates.items():
        by_cat.setdefault(categories[task], []).append(rate)
    return {c: sum(v) / len(v) for c, v in by_cat.items()}


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
