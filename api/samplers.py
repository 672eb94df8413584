"""Samplers: how a run draws each sample from its model. ``plain`` is one engine call per sample
at the run's temperature and top-p; ``power-mcmc`` and ``power-smc`` sample the base model's
sharpened distribution p^alpha (Karan & Du 2025; Power-SMC, arXiv 2602.10273) with many engine
calls per sample. The sampler and its resolved options are part of a run's identity.

This module is the pure part (names, options, their defaults and checks, the expected cost);
the algorithms are in ``boundary.workers.samplers``. Sources of every default: the docstrings
below and docs/samplers.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from boundary.api.errors import ConfigError, UnknownName
from boundary.api.types import Proposal, canonical_json

PLAIN = "plain"
POWER_MCMC = "power-mcmc"
POWER_SMC = "power-smc"
SAMPLERS: tuple[str, ...] = (PLAIN, POWER_MCMC, POWER_SMC)

POWER_MAX_TOKENS = 3072
"""Longest completion of a power-sampling run when ``--max-tokens`` is not given (tokens): the
reference's 16 blocks of 192 (``mcmc_power_samp(max_new_tokens=3072, block_num=16)``)."""


@dataclass(frozen=True)
class PowerMcmcOptions:
    """Metropolis-Hastings on p^alpha, growing the target one block at a time (Karan & Du 2025,
    arXiv 2510.14901, Algorithm 1; code: aakaran/reasoning-with-sampling,
    ``llm_experiments/power_samp_utils.py``, ``mcmc_power_samp``)."""

    alpha: float = 4.0
    """Power of the target p^alpha. The paper's alpha = 4 (its proposal temperature 0.25 = 1/alpha)."""
    proposal_temperature: float | None = None
    """Temperature of the proposal q; None means 1/alpha, the reference's choice."""
    block_tokens: int = 192
    """Tokens the target grows by per stage: the reference's 3072 new tokens in 16 blocks."""
    mcmc_steps: int = 10
    """Metropolis-Hastings steps after each block: the reference's ``mcmc_steps=10``."""
    top_k: int = 0
    """Truncate the proposal to the k most likely tokens (0: none). The reference's proposal
    carries transformers' default top-k 50 without saying so; set 50 to replicate it. The chain
    then samples p^alpha restricted to what q can reach."""
    top_p: float = 1.0
    """Truncate the proposal to its nucleus (1: none). The reference uses none; like top_k, a
    truncated q restricts the target to what it can reach. (``--top-p`` is the plain sampler's.)"""


@dataclass(frozen=True)
class PowerSmcOptions:
    """Sequential Monte Carlo on p^alpha: particles extended block by block from q, weighted by
    p(block)^alpha / q(block), resampled (systematic) when the effective sample size falls below
    ``ess_threshold`` times the particle count; the sample is drawn from the final weighted
    population (Power-SMC, arXiv 2602.10273; block size and particle count from
    roshanwariar/pisa, ``power_sampling_smc.py``, whose weights are a heuristic, not these)."""

    alpha: float = 4.0
    """Power of the target p^alpha, as for power-mcmc (pisa also runs alpha = 4)."""
    proposal_temperature: float | None = None
    """Temperature of q; None means 1/alpha, which Power-SMC argues is the variance-optimal
    prefix-only proposal."""
    block_tokens: int = 256
    """Tokens each particle is extended by between reweightings: pisa's ``block_size=256``."""
    particles: int = 16
    """Particles per final sample: the default of pisa's ``smc_logprob_beam`` (its AIME run
    uses 128). Every final sample is its own particle system, so samples stay independent."""
    ess_threshold: float = 0.5
    """Resample when ESS = (sum w)^2 / sum w^2 falls below this fraction of the particles: the
    usual adaptive-resampling rule (Doucet & Johansen 2009); 1 resamples after every block."""
    top_k: int = 0
    """Truncate q to the k most likely tokens (0: none), as for power-mcmc."""
    top_p: float = 1.0
    """Truncate q to its nucleus (1: none), as for power-mcmc (pisa samples at top-p 0.95)."""


OPTIONS: dict[str, type] = {PLAIN: type(None), POWER_MCMC: PowerMcmcOptions, POWER_SMC: PowerSmcOptions}

DIAGNOSTICS: dict[str, tuple[str, ...]] = {
    PLAIN: (),
    POWER_MCMC: ("acceptance_rate",),
    POWER_SMC: ("resamples", "final_ess"),
}
"""The figures of a sample's ``sampler_stats`` that a report averages over a run's samples: the
share of MH proposals accepted; the resamplings and the final effective sample size (particles)."""


def option_names(name: str) -> tuple[str, ...]:
    """The options a sampler takes, in the order its dataclass declares them (plain: none)."""
    cls = OPTIONS.get(name)
    return tuple(f.name for f in fields(cls)) if cls not in (None, type(None)) else ()


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler and its options, resolved (every default filled in): with the model, benchmark
    and sampling config, what identifies a run."""

    name: str = PLAIN
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_plain(self) -> bool:
        return self.name == PLAIN

    def proposal(self) -> Proposal:
        """The proposal q of a power sampler."""
        o = self.options
        return Proposal(float(o["proposal_temperature"]), float(o.get("top_p", 1.0)), int(o.get("top_k", 0)))

    def canonical(self) -> str:
        """The options as stored in a run's identity (sorted JSON)."""
        return canonical_json(dict(self.options))

    def describe(self) -> str:
        """``power-mcmc(alpha=4, block_tokens=192, ...)``, or ``plain``."""
        if not self.options:
            return self.name
        inner = ", ".join(f"{k}={_number(v)}" for k, v in sorted(self.options.items()))
        return f"{self.name}({inner})"

    def label(self) -> str:
        """A short name for tables and legends: the sampler and the options that differ from its
        defaults, in declaration order (``power-mcmc block_tokens=32 mcmc_steps=2``; ``plain``).
        A proposal temperature of 1/alpha is the default whatever alpha is."""
        cls = OPTIONS.get(self.name)
        if not self.options or cls in (None, type(None)):
            return self.describe() if cls is None else self.name
        order = [*option_names(self.name), *sorted(set(self.options) - set(option_names(self.name)))]
        changed = [f"{key}={_number(self.options[key])}" for key in order
                   if key in self.options and not _is_default(cls, key, self.options)]
        return " ".join([self.name, *changed])


def _is_default(cls: type, key: str, options: Mapping[str, Any]) -> bool:
    """Whether ``options[key]`` is what the sampler would resolve to without it."""
    value = options[key]
    if key == "proposal_temperature" and "alpha" in options:
        default = 1.0 / float(options["alpha"])
    elif key in {f.name for f in fields(cls)}:
        default = getattr(cls(), key)
    else:
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)) or default is None:
        return value == default
    return math.isclose(float(value), float(default), rel_tol=1e-12, abs_tol=0.0)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _coerce(name: str, key: str, value: Any, kind: Any) -> Any:
    wanted = kind if kind in (int, float) else float
    if isinstance(value, bool):
        raise ConfigError(f"{name} option {key} must be a number, got {value!r}")
    try:
        number = wanted(value) if not isinstance(value, str) else wanted(value.strip())
    except (TypeError, ValueError):
        raise ConfigError(f"{name} option {key} must be {'an integer' if wanted is int else 'a number'}, "
                          f"got {value!r}") from None
    if wanted is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{name} option {key} must be an integer, got {value!r}")
    if wanted is float and not math.isfinite(number):
        raise ConfigError(f"{name} option {key} must be finite, got {value!r}")
    return number


def _check(name: str, o: PowerMcmcOptions | PowerSmcOptions) -> None:
    if o.alpha <= 0:
        raise ConfigError(f"{name} option alpha must be > 0, got {o.alpha:g}")
    if o.proposal_temperature is not None and o.proposal_temperature <= 0:
        raise ConfigError(f"{name} option proposal_temperature must be > 0, got {o.proposal_temperature:g}")
    if o.block_tokens < 1:
        raise ConfigError(f"{name} option block_tokens must be >= 1, got {o.block_tokens}")
    if not (0 < o.top_p <= 1):
        raise ConfigError(f"{name} option top_p must be in (0, 1], got {o.top_p:g}")
    if o.top_k < 0:
        raise ConfigError(f"{name} option top_k must be >= 0 (0: no truncation), got {o.top_k}")
    if isinstance(o, PowerMcmcOptions) and o.mcmc_steps < 0:
        raise ConfigError(f"{name} option mcmc_steps must be >= 0, got {o.mcmc_steps}")
    if isinstance(o, PowerSmcOptions):
        if o.particles < 1:
            raise ConfigError(f"{name} option particles must be >= 1, got {o.particles}")
        if not (0 <= o.ess_threshold <= 1):
            raise ConfigError(f"{name} option ess_threshold must be in [0, 1], got {o.ess_threshold:g}")


def foreign_options(name: str, options: Mapping[str, Any]) -> dict[str, list[str]]:
    """The options given to a power sampler that belong only to another one (``mcmc_steps``
    to power-smc): per option, the samplers that take it. ``sampler_spec`` leaves them out, so a
    command can switch ``--sampler`` without editing its options; the caller says so."""
    if name not in SAMPLERS or name == PLAIN:
        return {}
    own = option_names(name)
    return {key: [s for s in SAMPLERS if key in option_names(s)] for key in options
            if key not in own and any(key in option_names(s) for s in SAMPLERS)}


def sampler_spec(name: str | None, options: Mapping[str, Any] | None = None) -> SamplerSpec:
    """Check a sampler name and its options (strings from ``-S key=value`` are converted) and
    fill in every default; raises ConfigError naming the bad option. An option of another power
    sampler only is left out (``foreign_options``); one no sampler knows is an error."""
    name = name or PLAIN
    if name not in SAMPLERS:
        raise UnknownName("sampler", name, SAMPLERS)
    given = dict(options or {})
    if name == PLAIN:
        if given:
            raise ConfigError(f"the plain sampler takes no options (got {', '.join(sorted(given))})")
        return SamplerSpec(PLAIN, {})
    for key in foreign_options(name, given):
        del given[key]
    cls = OPTIONS[name]
    kinds = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(given) - set(kinds))
    if unknown:
        raise ConfigError(f"unknown {name} option(s): {', '.join(unknown)} (known: {', '.join(sorted(kinds))})")
    types = {"alpha": float, "proposal_temperature": float, "ess_threshold": float, "top_p": float}
    values = {k: _coerce(name, k, v, types.get(k, int)) for k, v in given.items()}
    resolved = replace(cls(), **values)
    _check(name, resolved)
    if resolved.proposal_temperature is None:
        resolved = replace(resolved, proposal_temperature=1.0 / resolved.alpha)
    return SamplerSpec(name, {f.name: getattr(resolved, f.name) for f in fields(cls)})


def parse_sampler_options(pairs: Iterable[str]) -> dict[str, str]:
    """``-S alpha=4 -S block_tokens=32`` -> ``{"alpha": "4", "block_tokens": "32"}`` (typed later)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"a sampler option is KEY=VALUE, got '{pair}'")
        out[key.strip()] = value.strip()
    return out


def sampler_entries(names: Sequence[str], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``samplers:`` entries that ``submit --sampler A --sampler B -S key=value`` asks for (no
    name: plain): each option goes to every sampler given that takes it, so ``-S alpha=2`` sets
    both power samplers' alpha; an option that none of them takes is a ConfigError."""
    wanted = list(dict.fromkeys(names or [PLAIN]))
    for name in wanted:
        if name not in SAMPLERS:
            raise UnknownName("sampler", name, SAMPLERS)
    known = {name: set(option_names(name)) for name in wanted}
    orphans = sorted(k for k in options if not any(k in keys for keys in known.values()))
    if orphans:
        takes = sorted(set().union(*known.values()))
        raise ConfigError(f"no sampler given takes option(s) {', '.join(orphans)} (samplers: {', '.join(wanted)}; "
                          + (f"their options: {', '.join(takes)})" if takes else "plain takes none)"))
    return [{"name": name, **{k: v for k, v in options.items() if k in known[name]}} for name in wanted]


def stored_sampler(name: str, options_json: str | None) -> SamplerSpec:
    """The sampler of a stored run (its options are stored resolved)."""
    return SamplerSpec(name, json.loads(options_json or "{}"))


# --- cost -------------------------------------------------------------------------------

def mcmc_tokens_discrete(length: int, block_tokens: int, mcmc_steps: int) -> float:
    """Expected tokens decoded for one power-mcmc sample of ``length`` tokens, counting blocks as
    the algorithm runs them: each block decodes its own tokens, then each MH step cuts at a
    uniform position of the t tokens so far and regenerates, on average, (t + 1) / 2 of them
    (proposals that stop early make it less)."""
    if length <= 0:
        return 0.0
    blocks = math.ceil(length / block_tokens)
    total = float(length)
    for b in range(1, blocks + 1):
        t = min(b * block_tokens, length)
        total += mcmc_steps * (t + 1) / 2
    return total


def mcmc_tokens_paper(length: int, block_tokens: int, mcmc_steps: int) -> float:
    """The paper's estimate (Karan & Du 2025, Eq. 12): about K L^2 / (4 B) tokens for a
    generation of L tokens in blocks of B with K steps each (8.84x the plain cost at its
    MATH500 figures: K = 10, L = 679, B = 192)."""
    return mcmc_steps * length * length / (4 * block_tokens)


def expected_cost_factor(spec: SamplerSpec, max_tokens: int) -> float:
    """About how many plain samples' worth of decoding one sample of ``spec`` costs, taking a
    generation of ``max_tokens``: what a queue batch is sized by (tokens, not samples)."""
    if spec.is_plain:
        return 1.0
    if spec.name == POWER_SMC:
        return float(spec.options["particles"])
    o = spec.options
    return max(1.0, mcmc_tokens_discrete(max_tokens, int(o["block_tokens"]), int(o["mcmc_steps"])) / max_tokens)
