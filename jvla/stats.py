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
