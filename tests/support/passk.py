"""The reference pass@k estimator the project's own is checked against."""

from __future__ import annotations

import numpy as np


def numpy_reference(n: int, c: int, k: int) -> float:
    """Chen et al. 2021, Figure 3."""
    if n - c < k:
        return 1.0
    return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))
