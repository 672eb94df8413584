"""Running many chains at once. A chain is a generator: it yields the extensions it needs next
(a list: one for an MH proposal, one per live particle for SMC), receives their continuations
in the same order, and returns a ChainResult. ``drive`` advances every live chain by one round,
sending all their extensions to the engine together, so the engine batches across chains."""

from __future__ import annotations

from collections.abc import Generator, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from boundary.api.errors import EngineError
from boundary.api.types import Continuation, Cost, Extension, ProgressFn, Proposal, TokenEngine

MAX_EXTENSIONS_PER_CALL = 4096
"""Extensions sent to the engine in one call, at most: enough to fill a GPU batch, few enough
that the continuations of one call stay small in memory."""

SEED_SPACE = 2**31
"""Seeds handed to the engine lie in [0, 2^31), which every engine accepts."""


class Rng:
    """A chain's own random numbers (NumPy's PCG64 seeded with the sample's seed): the cut
    positions, acceptance draws, resampling and the engine seeds of its calls, so a sample
    depends on nothing but its seed."""

    def __init__(self, seed: int):
        self.generator = np.random.Generator(np.random.PCG64(seed))

    def seed(self) -> int:
        return int(self.generator.integers(0, SEED_SPACE))

    def integer(self, high: int) -> int:
        """Uniform on 0 .. high - 1."""
        return int(self.generator.integers(0, high))

    def uniform(self) -> float:
        return float(self.generator.random())


@dataclass
class ChainResult:
    """What a chain returns: its sample's tokens (the stop token included, as plain samples
    count it), whether it ended on a stop token, the sum of their raw log-probabilities, and
    the sampler's diagnostics."""

    tokens: list[int]
    stopped: bool
    logp: float
    diagnostics: dict[str, Any] = field(default_factory=dict)


Chain = Generator[list[Extension], list[Continuation], ChainResult]


def _check(requests: list[Extension], continuations: list[Continuation], engine: TokenEngine) -> None:
    if len(continuations) != len(requests):
        raise EngineError(f"the {engine.name} engine returned {len(continuations)} continuations "
                          f"for {len(requests)} extensions")
    for r, c in zip(requests, continuations):
        if not (len(c.tokens) == len(c.logp) == len(c.logq)) or len(c.tokens) > r.max_new_tokens:
            raise EngineError(f"the {engine.name} engine returned a malformed continuation "
                              f"({len(c.tokens)} tokens for at most {r.max_new_tokens})")


def _extend(engine: TokenEngine, proposal: Proposal, requests: list[Extension]) -> list[Continuation]:
    out: list[Continuation] = []
    for start in range(0, len(requests), MAX_EXTENSIONS_PER_CALL):
        part = requests[start : start + MAX_EXTENSIONS_PER_CALL]
        continuations = list(engine.extend(part, proposal))
        _check(part, continuations, engine)
        out.extend(continuations)
    return out


def drive(
    engine: TokenEngine,
    proposal: Proposal,
    chains: Mapping[Hashable, Chain],
    progress: ProgressFn | None = None,
) -> Iterator[tuple[Hashable, ChainResult, Cost]]:
    """Run every chain to its end; yields (key, result, cost) as chains finish. A chain's cost
    is the sum of what the engine reported for its continuations."""
    pending: dict[Hashable, list[Extension]] = {}
    spent: dict[Hashable, list[int]] = {}  # decoded, prefill, calls: summed as ints, one Cost at the end
    live = dict(chains)

    def finished(key: Hashable, result: ChainResult) -> tuple[Hashable, ChainResult, Cost]:
        del live[key]
        if progress is not None:
            progress(1)
        return key, result, Cost(*spent.pop(key))

    for key, chain in list(live.items()):
        spent[key] = [0, 0, 0]
        try:
            pending[key] = next(chain)
        except StopIteration as stop:
            yield finished(key, stop.value)
    while pending:
        order = list(pending)
        flat = [e for key in order for e in pending[key]]
        continuations = iter(_extend(engine, proposal, flat) if flat else [])
        answers = {key: [next(continuations) for _ in pending[key]] for key in order}
        pending = {}
        for key in order:
            got = answers[key]
            total = spent[key]
            for c in got:
                total[0] += c.cost.decoded_tokens
                total[1] += c.cost.prefill_tokens
                total[2] += c.cost.engine_calls
            try:
                pending[key] = live[key].send(got)
            except StopIteration as stop:
                yield finished(key, stop.value)
