"""power-smc: sequential Monte Carlo on p^alpha (Power-SMC, arXiv 2602.10273), in blocks.

Each final sample is one particle system of ``particles`` particles:

1. Every particle that has not ended is extended by ``block_tokens`` tokens drawn from the
   proposal q (or fewer, at a stop token or the length cap), and its log weight grows by
   ``alpha * log p(block) - log q(block)`` (raw model log-probabilities, proposal ones). The
   weights are then p(x)^alpha / q(x) for each particle's generation so far: importance weights
   for the intermediate targets p(prefix)^alpha, and for p^alpha over complete generations once
   every particle has ended.
2. After a block, when the effective sample size (sum w)^2 / sum w^2 falls below
   ``ess_threshold * particles``, the population is resampled systematically and the weights
   reset to equal.
3. When every particle has ended (a stop token or the cap), the sample is drawn from the
   population with probability proportional to its weights.

Differences from roshanwariar/pisa's ``power_sampling_smc.py``: pisa resamples after every
block in proportion to exp(alpha * mean token log-probability), which has no importance weight
for q and does not target p^alpha; here the weights are the exact incremental ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from boundary.api.types import Extension
from boundary.workers.samplers.driver import Chain, ChainResult, Rng


def normalized(log_weights: np.ndarray) -> np.ndarray:
    w = np.exp(log_weights - log_weights.max())
    return w / w.sum()


def ess(log_weights: np.ndarray) -> float:
    """The effective sample size (sum w)^2 / sum w^2 of a population."""
    w = normalized(log_weights)
    return float(1.0 / np.square(w).sum())


def systematic(weights: np.ndarray, u: float) -> np.ndarray:
    """Systematic resampling: ``len(weights)`` indices at the points (u + j) / N of the
    weights' cumulative sum, for one uniform ``u`` in [0, 1)."""
    n = len(weights)
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, (u + np.arange(n)) / n, side="right")


def power_smc(prompt: tuple[int, ...], cap: int, options: Mapping[str, Any], rng: Rng) -> Chain:
    """One power-smc particle system for ``prompt`` (token ids), generating at most ``cap`` tokens."""
    alpha = float(options["alpha"])
    block, n = int(options["block_tokens"]), int(options["particles"])
    threshold = float(options["ess_threshold"])
    tokens: list[list[int]] = [[] for _ in range(n)]
    logp = np.zeros(n)
    log_w = np.zeros(n)
    ended = [False] * n
    stopped = [False] * n
    length = 0
    resamples = 0
    while not all(ended):
        length = min(length + block, cap)
        live = [j for j in range(n) if not ended[j]]
        got = yield [Extension(None, prompt + tuple(tokens[j]), length - len(tokens[j]), rng.seed()) for j in live]
        for j, c in zip(live, got):
            tokens[j] = tokens[j] + list(c.tokens)
            p, q = math.fsum(c.logp), math.fsum(c.logq)
            logp[j] += p
            log_w[j] += alpha * p - q
            stopped[j] = c.stopped
            ended[j] = c.stopped or len(tokens[j]) >= cap
        if all(ended):
            break
        if ess(log_w) < threshold * n:
            picked = systematic(normalized(log_w), rng.uniform())
            tokens = [list(tokens[k]) for k in picked]
            logp, ended, stopped = logp[picked], [ended[k] for k in picked], [stopped[k] for k in picked]
            log_w = np.zeros(n)
            resamples += 1
    final_ess = ess(log_w)
    weights = normalized(log_w)
    u = rng.uniform()
    chosen = int(min(np.searchsorted(np.cumsum(weights), u, side="right"), n - 1))
    return ChainResult(tokens[chosen], stopped[chosen], float(logp[chosen]),
                       {"particles": n, "resamples": resamples, "final_ess": final_ess})
