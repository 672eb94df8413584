"""The unbiased pass@k estimator against hand-computed values, exact rational arithmetic and
the numpy reference implementation of Chen et al. 2021."""

from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import pytest

from boundary.api.analysis.estimator import k_grid, mean_pass_at_k, pass_at_k
from boundary.api.errors import ConfigError
from tests.support.passk import numpy_reference


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 is the fraction correct
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 0, 10, 0.0),  # never solved: zero at every k
        (10, 1, 10, 1.0),  # k = n with one correct: coverage
        (8, 7, 2, 1.0),  # n - c < k
        (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
    ],
)
def test_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_numpy_reference_and_exact_value_on_random_cases() -> None:
    rng = random.Random(1234)
    cases = [(n, c, k) for n, c, k in [(1024, 0, 1024), (1024, 1, 1024), (1024, 3, 1), (256, 255, 256)]]
    for _ in range(2000):
        n = rng.randint(1, 1024)
        cases.append((n, rng.randint(0, n), rng.randint(1, n)))
    for n, c, k in cases:
        ours = pass_at_k(n, c, k)
        assert ours == pytest.approx(numpy_reference(n, c, k), abs=1e-12), (n, c, k)
        assert ours == pytest.approx(float(exact(n, c, k)), abs=1e-9), (n, c, k)
        assert 0.0 <= ours <= 1.0


def test_k_equal_n_is_coverage_and_c_zero_is_zero() -> None:
    for n in (1, 2, 7, 128):
        assert pass_at_k(n, 0, n) == 0.0
        for c in range(1, n + 1):
            assert pass_at_k(n, c, n) == 1.0


def test_monotone_in_k() -> None:
    n, c = 64, 5
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(a <= b + 1e-15 for a, b in zip(values, values[1:]))


def test_mean_over_problems() -> None:
    counts = [(4, 1), (4, 0), (4, 4)]
    assert mean_pass_at_k(counts, 2) == pytest.approx((0.5 + 0.0 + 1.0) / 3)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_invalid_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ConfigError):
        pass_at_k(n, c, k)


def test_mean_of_nothing_is_an_error() -> None:
    with pytest.raises(ConfigError):
        mean_pass_at_k([], 1)


@pytest.mark.parametrize(("n", "grid"), [(1, [1]), (2, [1, 2]), (8, [1, 2, 4, 8]), (12, [1, 2, 4, 8, 12]), (0, [])])
def test_k_grid(n: int, grid: list[int]) -> None:
    assert k_grid(n) == grid
