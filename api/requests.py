"""From what a user typed to a validated run: the one place that turns names and options
into a RunSpec and a problem selection. The CLI's ``run`` and an experiment file's entries go
through it, so both reject bad input the same way, before anything is written."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boundary.api import defaults
from boundary.api.benchmarks import load_benchmark, select
from boundary.api.errors import ConfigError, UnknownName
from boundary.api.models import resolve_model
from boundary.api.prompts import default_template, get_template
from boundary.api.runs import RunSpec
from boundary.api.samplers import POWER_MAX_TOKENS, SamplerSpec, foreign_options, sampler_spec
from boundary.api.types import ENGINES, Problem, SamplingConfig

log = logging.getLogger("boundary.requests")


@dataclass(frozen=True)
class RunRequest:
    """One model on one benchmark, as asked for (names and raw values, not yet checked)."""

    model: str
    benchmark: str
    n: int = defaults.N_SAMPLES
    temperature: float | None = None
    """The plain sampler's temperature (None: defaults.TEMPERATURE); a power sampler's proposal
    temperature is its own option."""
    top_p: float | None = None
    """The plain sampler's top-p (None: defaults.TOP_P)."""
    max_tokens: int | None = None
    """None: defaults.MAX_TOKENS for plain, the reference's 3072 for power samplers."""
    sampler: str = "plain"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    seed: int = defaults.SEED
    template: str | None = None
    engine: str = defaults.ENGINE
    engine_options: dict[str, Any] = field(default_factory=dict)
    model_name: str | None = None
    role: str | None = None
    family: str | None = None
    fields: tuple[str, ...] = ()
    hf_split: str = "test"
    hf_config: str | None = None
    limit: int | None = None
    problems: tuple[str, ...] = ()
    kind: str = "math"


def resolve(request: RunRequest, data_dir: Path | None) -> tuple[RunSpec, list[Problem]]:
    """Check everything and load the benchmark; raises a BoundaryError on any bad input."""
    if request.n < 1:
        raise ConfigError(f"-k must be >= 1, got {request.n}")
    sampler = sampler_spec(request.sampler, request.sampler_options)
    for key, owners in foreign_options(request.sampler, request.sampler_options).items():
        log.warning("note: %s does not use -S %s (an option of %s); left out", request.sampler, key, ", ".join(owners))
    sampling = sampling_for(request, sampler)
    if request.engine not in ENGINES:
        raise UnknownName("engine", request.engine, ENGINES)
    if request.kind not in ("math", "code"):
        raise ConfigError(f"benchmark kind must be math or code, got '{request.kind}'")
    benchmark = load_benchmark(
        request.benchmark, data_dir, fields=request.fields, kind=request.kind,  # type: ignore[arg-type]
        hf_split=request.hf_split, hf_config=request.hf_config,
    )
    problems = select(benchmark.problems, request.limit, request.problems)
    template = request.template or default_template(benchmark.name, benchmark.kind)
    get_template(template, benchmark.kind)
    model = resolve_model(request.model, role=request.role, family=request.family, alias=request.model_name)
    spec = RunSpec(model, benchmark, sampling, template, request.engine, request.n, dict(request.engine_options),
                   sampler)
    return spec, problems


def sampling_for(request: RunRequest, sampler: SamplerSpec) -> SamplingConfig:
    """The run's sampling config: the request's values for plain; for a power sampler, its
    proposal's temperature and top-p (stored in the run's columns too, so reports that group by
    temperature see the temperature actually sampled at)."""
    if sampler.is_plain:
        return SamplingConfig(
            defaults.TEMPERATURE if request.temperature is None else request.temperature,
            defaults.TOP_P if request.top_p is None else request.top_p,
            defaults.MAX_TOKENS if request.max_tokens is None else request.max_tokens,
            request.seed,
        )
    for flag, value in (("--temperature", request.temperature), ("--top-p", request.top_p)):
        if value is not None:
            option = "proposal_temperature" if flag == "--temperature" else "top_p"
            raise ConfigError(f"{flag} is the plain sampler's; {sampler.name} draws its proposals with "
                              f"-S {option}=VALUE (default {_plain(sampler.options[option])})")
    proposal = sampler.proposal()
    max_tokens = POWER_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    return SamplingConfig(proposal.temperature, proposal.top_p, max_tokens, request.seed)


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def split_ids(text: str | None) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(k.strip() for k in (text or "").split(",") if k.strip())
