"""The unbiased pass@k estimator (Chen et al. 2021) in Python, and the k grid reports use: the
reference the SQL estimator (analysis.passk) is tested against."""

from __future__ import annotations

from collections.abc import Iterable

from boundary.api.errors import ConfigError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn without replacement from n samples of
    which c are correct, is correct: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod(1 - k/i for i in n-c+1..n)``, which never forms a binomial
    coefficient and so stays exact to float precision for n in the thousands.
    """
    if n < 1:
        raise ConfigError(f"pass@k needs n >= 1 samples, got n={n}")
    if not 0 <= c <= n:
        raise ConfigError(f"pass@k needs 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ConfigError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """pass@k averaged over problems, given (n, c) per problem."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ConfigError("pass@k over zero problems is undefined")
    return sum(values) / len(values)


def k_grid(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n, with n itself last (pass@n is coverage)."""
    if n < 1:
        return []
    ks = []
    k = 1
    while k < n:
        ks.append(k)
        k *= 2
    ks.append(n)
    return ks
