"""From what a user typed to a validated run: the one place that turns names and options
into a RunSpec and a problem selection. The CLI's ``run`` and an experiment file's entries go
through it, so both reject bad input the same way, before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boundary.api import defaults
from boundary.api.benchmarks import load_benchmark, select
from boundary.api.errors import ConfigError, UnknownName
from boundary.api.models import resolve_model
from boundary.api.prompts import default_template, get_template
from boundary.api.runs import RunSpec
from boundary.api.types import ENGINES, Problem, SamplingConfig


@dataclass(frozen=True)
class RunRequest:
    """One model on one benchmark, as asked for (names and raw values, not yet checked)."""

    model: str
    benchmark: str
    n: int = defaults.N_SAMPLES
    temperature: float = defaults.TEMPERATURE
    top_p: float = defaults.TOP_P
    max_tokens: int = defaults.MAX_TOKENS
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
    sampling = SamplingConfig(request.temperature, request.top_p, request.max_tokens, request.seed)
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
    spec = RunSpec(model, benchmark, sampling, template, request.engine, request.n, dict(request.engine_options))
    return spec, problems


def split_ids(text: str | None) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(k.strip() for k in (text or "").split(",") if k.strip())
