"""Samplers beyond plain sampling (boundary.api.samplers names them): each sample is a chain
(power-mcmc) or a particle system (power-smc) of its own, written as a generator that yields the
engine calls it needs; ``driver`` runs many at once, batching their calls into one engine call
per round and counting what each costs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from boundary.api.errors import EngineError
from boundary.api.samplers import POWER_MCMC, POWER_SMC, SamplerSpec
from boundary.api.types import Completion, Engine, GenerationRequest, ProgressFn, SamplingConfig, TokenEngine
from boundary.workers.samplers.driver import Chain, ChainResult, Rng, drive
from boundary.workers.samplers.mcmc import power_mcmc
from boundary.workers.samplers.smc import power_smc

__all__ = ["Chain", "ChainResult", "Rng", "drive", "generate", "power_mcmc", "power_smc", "token_engine_of"]

ALGORITHMS = {POWER_MCMC: power_mcmc, POWER_SMC: power_smc}


def token_engine_of(engine: Engine, sampler: str) -> TokenEngine:
    """The engine's token-level interface, or an EngineError naming the engine and what it lacks."""
    offer = getattr(engine, "token_engine", None)
    if offer is None:
        raise EngineError(f"the {engine.name} engine cannot run the {sampler} sampler: it gives no token ids "
                          "with log-probabilities under both the model and the proposal")
    return offer()


def generate(
    engine: Engine,
    spec: SamplerSpec,
    requests: Sequence[GenerationRequest],
    config: SamplingConfig,
    progress: ProgressFn | None = None,
) -> Iterator[Completion]:
    """Draw every request's samples with ``spec``'s algorithm: one chain per sample, seeded
    with the sample's own seed (``request.seed + i``), as a plain sample is."""
    tokens = token_engine_of(engine, spec.name)
    algorithm = ALGORITHMS[spec.name]
    proposal = spec.proposal()
    chains: dict[tuple, Chain] = {}
    prompts: dict[str, list[int]] = {}
    prompt_tokens: dict[object, int] = {}
    for r in requests:
        if r.prompt not in prompts:
            prompts[r.prompt] = tokens.encode(r.prompt)
        ids = prompts[r.prompt]
        prompt_tokens[r.key] = len(ids)
        cap = config.max_tokens
        if tokens.max_context is not None:
            cap = min(cap, tokens.max_context - len(ids) - 1)
        if cap < 1:
            raise EngineError(f"a prompt of {len(ids)} tokens leaves no room to generate in the engine's "
                              f"context of {tokens.max_context}")
        for i in range(r.first_index, r.first_index + r.count):
            chains[(r.key, i)] = algorithm(tuple(ids), cap, spec.options, Rng(r.seed + i))
    for (key, index), result, cost in drive(tokens, proposal, chains, progress):
        yield Completion(
            key=key,
            index=index,
            text=tokens.decode(result.tokens),
            num_tokens=len(result.tokens),
            finish_reason="stop" if result.stopped else "length",
            cumulative_logprob=result.logp,
            prompt_tokens=prompt_tokens[key],
            cost=cost,
            diagnostics=result.diagnostics,
        )

