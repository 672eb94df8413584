"""power-mcmc and power-smc against a model whose sequence distribution is known exactly.

The model is a three-token Markov chain (a, b and a stop token; the stop token's row is the start
distribution), with completions capped at four tokens: 31 complete sequences, so p^alpha / Z can
be enumerated. Its rows are chosen so that sharpening token by token (plain sampling at
temperature 1/alpha) and sharpening the whole sequence (p^alpha) disagree: after ``a`` the chain
is uncertain, after ``b`` it almost surely stops, so p^alpha prefers ``b`` first while q prefers
``a``.

The threshold. With N independent samples, the empirical frequency of a sequence of probability p
is off by sqrt(2 p (1 - p) / (pi N)) on average, so the expected total-variation distance of an
exact sampler is about ``noise = 1/2 sum sqrt(2 p (1 - p) / (pi N))``. A sampler passes when its
distance is below ``3 * noise + 0.01`` (the 0.01 allows for the bias of finitely many steps or
particles); the tests print both. Every sample uses its own seed, so each run of the tests draws
the same samples: the distances in the assertions are reproducible, not flaky. Each test also
runs a deliberately wrong variant (no q term, the reference's truncated ratio, weights without
q) and asserts that it exceeds the same bound, so the bound is tight enough to catch them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from boundary.api.samplers import sampler_spec
from boundary.api.types import Extension, Proposal
from boundary.workers.engines.markov import MarkovTokens
from boundary.workers.samplers import Rng, drive, power_mcmc, power_smc
from boundary.workers.samplers import mcmc as mcmc_module
from boundary.workers.samplers.driver import ChainResult
from boundary.workers.samplers.mcmc import Generation, mh_step

ROWS = np.array([
    [0.40, 0.35, 0.25],  # after a: uncertain
    [0.06, 0.04, 0.90],  # after b: almost surely stop
    [0.55, 0.40, 0.05],  # at the start (the stop token's row)
])
START = (2,)
CAP = 4
MODEL = MarkovTokens(np.log(ROWS), stop=2)


def tv(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def bound(target: dict, n: int) -> float:
    noise = 0.5 * sum(math.sqrt(2 * p * (1 - p) / (math.pi * n)) for p in target.values())
    return 3 * noise + 0.01


def empirical_tokens(sequences: list) -> dict:
    counts = Counter(tuple(s) for s in sequences)
    return {k: v / len(sequences) for k, v in counts.items()}


def empirical(results: list[ChainResult]) -> dict:
    return empirical_tokens([r.tokens for r in results])


def run_chains(algorithm: Callable, options: dict, n: int, seed: int = 0) -> list[ChainResult]:
    spec = sampler_spec(algorithm.__name__.replace("_", "-"), options)
    chains = {i: algorithm(START, CAP, spec.options, Rng(seed * 1_000_003 + i)) for i in range(n)}
    return [result for _, result, _ in drive(MODEL, spec.proposal(), chains)]


def test_the_model_is_what_the_test_says() -> None:
    """The enumeration covers a probability distribution, and plain sampling from the engine
    at temperature 1 matches p (a check of the engine the other tests rely on)."""
    p = MODEL.power_distribution(START[0], CAP, 1.0)
    assert len(p) == 31 and math.isclose(sum(p.values()), 1.0)
    n = 4000
    drawn = MODEL.extend([Extension(i, START, CAP, 7000 + i) for i in range(n)], Proposal(1.0))
    assert tv(empirical_tokens([c.tokens for c in drawn]), p) < bound(p, n)


@pytest.mark.parametrize("alpha", [2.0, 4.0])
def test_plain_sampling_at_temperature_one_over_alpha_is_not_p_to_the_alpha(alpha: float) -> None:
    """The reason these samplers exist: token-wise sharpening is not sequence-wise sharpening."""
    target = MODEL.power_distribution(START[0], CAP, alpha)
    plain = MODEL.proposal_distribution(START[0], CAP, Proposal(1 / alpha))
    assert tv(plain, target) > 0.3  # exact distributions: 0.36 at alpha 2, 0.72 at alpha 4
    n = 4000
    drawn = MODEL.extend([Extension(i, START, CAP, 9000 + i) for i in range(n)], Proposal(1 / alpha))
    measured = tv(empirical_tokens([c.tokens for c in drawn]), target)
    print(f"alpha {alpha}: plain at T = 1/alpha, TV {measured:.4f} (bound {bound(target, n):.4f})")
    assert measured > 5 * bound(target, n)


# --- the MH kernel ------------------------------------------------------------------------

def _from_target(alpha: float, n: int, seed: int) -> list[Generation]:
    """``n`` generations drawn exactly from p^alpha, with their log p and log q filled in."""
    target = MODEL.power_distribution(START[0], CAP, alpha)
    seqs = list(target)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(seqs), size=n, p=np.array([target[s] for s in seqs]))
    logq_table = MODEL.proposal_logq(Proposal(1 / alpha))
    out = []
    for i in picks:
        seq = seqs[i]
        prev = (START[0], *seq[:-1])
        out.append(Generation(list(seq), [float(MODEL.logp[a, b]) for a, b in zip(prev, seq)],
                              [float(logq_table[a, b]) for a, b in zip(prev, seq)], seq[-1] == MODEL.stop))
    return out


def _kernel(alpha: float, steps: int, n: int = 6000) -> tuple[float, float]:
    """Start from exact samples of p^alpha, take ``steps`` MH steps at the final target, and
    return (distance to p^alpha, bound)."""
    target = MODEL.power_distribution(START[0], CAP, alpha)

    def chain(x: Generation, rng: Rng):
        for _ in range(steps):
            yield from mh_step(START, x, CAP, alpha, rng)
        return ChainResult(x.tokens, x.stopped, 0.0)

    starts = _from_target(alpha, n, seed=int(alpha * 10))
    chains = {i: chain(x, Rng(50_000 + i)) for i, x in enumerate(starts)}
    results = [r for _, r, _ in drive(MODEL, Proposal(1 / alpha), chains)]
    return tv(empirical(results), target), bound(target, n)


def _reference_ratio(alpha: float, cut: int, current: Generation, proposal) -> float:
    """The reference's ratio: both suffixes cut to the shorter one, no length factor."""
    s = len(proposal.tokens)
    return (alpha * (math.fsum(proposal.logp) - math.fsum(current.logp[cut:cut + s]))
            + math.fsum(current.logq[cut:cut + s]) - math.fsum(proposal.logq))


def _no_q_ratio(alpha: float, cut: int, current: Generation, proposal) -> float:
    return alpha * (math.fsum(proposal.logp) - math.fsum(current.logp[cut:]))


@pytest.mark.parametrize("alpha", [2.0, 4.0])
def test_the_mh_step_leaves_p_to_the_alpha_invariant(alpha: float) -> None:
    """Exact MH: started from p^alpha, the chain stays at p^alpha, whatever the mixing."""
    distance, limit = _kernel(alpha, steps=20)
    print(f"alpha {alpha}: kernel TV {distance:.4f} (bound {limit:.4f})")
    assert distance < limit


@pytest.mark.parametrize("wrong", [_reference_ratio, _no_q_ratio], ids=["reference-truncated", "no-q-term"])
def test_a_wrong_acceptance_ratio_fails_the_same_bound(monkeypatch: pytest.MonkeyPatch, wrong: Callable) -> None:
    """At alpha 2 (where p^alpha is spread over several sequences) 20 steps of a wrong kernel
    drift well away from p^alpha: the reference's truncation (lengths differ often here, as the
    cap is short) and a ratio without q both end more than twice the bound away."""
    monkeypatch.setattr(mcmc_module, "log_ratio", wrong)
    distance, limit = _kernel(2.0, steps=20)
    print(f"{wrong.__name__}: kernel TV {distance:.4f} (bound {limit:.4f})")
    assert distance > 2 * limit


# --- the samplers end to end ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("alpha", "steps"), [(1.0, 8), (2.0, 12), (4.0, 40)])
def test_power_mcmc_samples_p_to_the_alpha(alpha: float, steps: int) -> None:
    """Blocks of two tokens, ``steps`` MH steps after each: the last stage's steps target
    p^alpha over complete sequences. At alpha 4 the proposal rarely offers the first token
    p^alpha prefers (q gives it 22%), so the chain needs more steps to mix."""
    n = 6000
    target = MODEL.power_distribution(START[0], CAP, alpha)
    results = run_chains(power_mcmc, {"alpha": alpha, "block_tokens": 2, "mcmc_steps": steps}, n)
    distance = tv(empirical(results), target)
    print(f"alpha {alpha}: power-mcmc TV {distance:.4f} (bound {bound(target, n):.4f})")
    assert distance < bound(target, n)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [1.0, 2.0, 4.0])
def test_power_smc_samples_p_to_the_alpha(alpha: float) -> None:
    """32 particles in blocks of two tokens, resampling below half the particles."""
    n = 6000
    target = MODEL.power_distribution(START[0], CAP, alpha)
    results = run_chains(power_smc, {"alpha": alpha, "block_tokens": 2, "particles": 32}, n)
    distance = tv(empirical(results), target)
    print(f"alpha {alpha}: power-smc TV {distance:.4f} (bound {bound(target, n):.4f})")
    assert distance < bound(target, n)
    if alpha == 4.0:  # the weights degenerate after a block: the population is resampled
        assert sum(r.diagnostics["resamples"] > 0 for r in results) > n / 2


def test_smc_weights_without_the_q_term_fail_the_same_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same SMC with log weights alpha * log p only (no - log q) is measurably wrong."""
    n, alpha = 6000, 2.0
    target = MODEL.power_distribution(START[0], CAP, alpha)

    class NoQ(MarkovTokens):
        def extend(self, requests, proposal):
            out = super().extend(requests, proposal)
            return [type(c)(c.key, c.tokens, c.logp, tuple(0.0 for _ in c.logq), c.stopped, c.cost) for c in out]

    wrong = NoQ(MODEL.logits, MODEL.stop)
    spec = sampler_spec("power-smc", {"alpha": alpha, "block_tokens": 2, "particles": 32})
    chains = {i: power_smc(START, CAP, spec.options, Rng(i)) for i in range(n)}
    results = [r for _, r, _ in drive(wrong, spec.proposal(), chains)]
    distance = tv(empirical(results), target)
    print(f"no-q weights: power-smc TV {distance:.4f} (bound {bound(target, n):.4f})")
    assert distance > 2 * bound(target, n)
