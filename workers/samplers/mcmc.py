"""power-mcmc: Metropolis-Hastings on p^alpha over the completion, the target growing one block
at a time (Karan & Du 2025, arXiv 2510.14901; reference code: aakaran/reasoning-with-sampling,
``llm_experiments/power_samp_utils.py``, ``mcmc_power_samp``).

The chain, for a completion capped at ``cap`` tokens, in stages of ``block_tokens``:

1. Extend the current generation x by a block drawn from the proposal q (the model at
   ``proposal_temperature``, 1/alpha by default), up to the stage's length T or a stop token.
2. Run ``mcmc_steps`` MH steps targeting p^alpha over generations of length T (or ending in a
   stop token before T): cut at a position i uniform on 0 .. len(x) - 1, regenerate x[i:] from q
   up to length T or a stop token, and accept x' with probability min(1, r),

       log r = alpha * (log p(x'[i:]) - log p(x[i:])) + log q(x[i:]) - log q(x'[i:])
               + log len(x) - log len(x'),

   where log p is the model's raw log-probability (temperature 1) and log q the proposal's,
   summed over the regenerated and the replaced suffix. The values for the current x are kept
   from when its tokens were drawn, as in the reference: no re-scoring pass.

Where this differs from the reference, and why (the reference is not exact MH there):

- A proposal that stops early (a stop token before T) is compared with the *whole* old suffix
  x[i:], and the ratio carries len(x) / len(x'): the cut is uniform over the current length, so
  the chance of proposing a cut depends on it. The reference cuts both sums to the shorter
  length and leaves out the length factor, which biases the chain whenever lengths differ.
- When the generation ends (a stop token), the reference returns it after that stage's steps.
  A chain that stops there samples p^alpha over generations of length <= T, which under-weights
  short complete answers relative to p^alpha over complete ones. Here, once the generation ends,
  the steps of that stage (or of the next one, if it ended during a stage's steps) target the
  final distribution (generations of up to ``cap`` tokens) and the chain then stops: so the
  last steps of every chain leave p^alpha over complete generations invariant, and at most one
  stage of steps is added to the reference's cost.
- The reference seeds Python's ``random`` with 0 whatever ``--seed`` says; here every draw comes
  from the sample's own seed.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from boundary.api.types import Continuation, Extension
from boundary.workers.samplers.driver import Chain, ChainResult, Rng


@dataclass
class Generation:
    """The chain's current state: its tokens with their raw and proposal log-probabilities (kept
    from when each was drawn), and whether it ended on a stop token."""

    tokens: list[int] = field(default_factory=list)
    logp: list[float] = field(default_factory=list)
    logq: list[float] = field(default_factory=list)
    stopped: bool = False

    def replace_from(self, cut: int, c: Continuation) -> None:
        self.tokens[cut:], self.logp[cut:], self.logq[cut:] = list(c.tokens), list(c.logp), list(c.logq)
        self.stopped = c.stopped


def log_ratio(alpha: float, cut: int, current: Generation, proposal: Continuation) -> float:
    """log r of replacing ``current.tokens[cut:]`` with the proposal's tokens (module docstring)."""
    new_length = cut + len(proposal.tokens)
    return (alpha * (math.fsum(proposal.logp) - math.fsum(current.logp[cut:]))
            + math.fsum(current.logq[cut:]) - math.fsum(proposal.logq)
            + math.log(len(current.tokens)) - math.log(new_length))


def mh_step(prompt: tuple[int, ...], x: Generation, target: int, alpha: float,
            rng: Rng) -> Generator[list[Extension], list[Continuation], bool]:
    """One Metropolis-Hastings step on ``x`` towards p^alpha over generations of at most
    ``target`` tokens (``x`` is changed in place); returns whether the proposal was accepted."""
    cut = rng.integer(len(x.tokens))
    (c,) = yield [Extension(None, prompt + tuple(x.tokens[:cut]), target - cut, rng.seed())]
    if rng.uniform() < math.exp(min(0.0, log_ratio(alpha, cut, x, c))):
        x.replace_from(cut, c)
        return True
    return False


def power_mcmc(prompt: tuple[int, ...], cap: int, options: Mapping[str, Any], rng: Rng) -> Chain:
    """One power-mcmc chain for ``prompt`` (token ids), generating at most ``cap`` tokens."""
    alpha = float(options["alpha"])
    block, steps = int(options["block_tokens"]), int(options["mcmc_steps"])
    x = Generation()
    length = 0  # the stage's target length T
    proposed = accepted = 0
    while True:
        if not x.stopped:
            length = min(length + block, cap)
            (c,) = yield [Extension(None, prompt + tuple(x.tokens), length - len(x.tokens), rng.seed())]
            x.replace_from(len(x.tokens), c)
        final = x.stopped or length >= cap
        target = cap if x.stopped else length
        for _ in range(steps):
            accepted += yield from mh_step(prompt, x, target, alpha, rng)
            proposed += 1
        if final:
            break
    rate = accepted / proposed if proposed else None
    return ChainResult(x.tokens, x.stopped, math.fsum(x.logp),
                       {"proposals": proposed, "accepted": accepted, "acceptance_rate": rate})
