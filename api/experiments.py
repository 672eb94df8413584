"""Experiments: several models with roles x benchmarks x samplers x temperatures, from a YAML file or
the equivalent flags, registered under a name so that submitting again reuses them. The file's
keys, with an example: docs/library.md, "Experiment files".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api import defaults
from boundary.api.db import schema
from boundary.api.errors import ConfigError, DataError
from boundary.api.prompts import TEMPLATES
from boundary.api.requests import RunRequest, resolve
from boundary.api.runs import RunSpec, find_runs, register
from boundary.api.samplers import PLAIN, sampler_entries, sampler_spec
from boundary.api.types import Problem, canonical_json
from boundary.api.yamlfile import read_yaml

TOP_KEYS = {"name", "n", "temperature", "temperatures", "top_p", "max_tokens", "seed", "batch_size", "benchmarks",
            "models", "template", "engine", "samplers"}
MODEL_KEYS = {"name", "model", "role", "family", "template", "engine", "engine_options", "n", "temperature",
              "temperatures", "top_p", "max_tokens", "seed", "samplers"}
BENCHMARK_KEYS = {"name", "limit", "problems", "fields", "hf_split", "hf_config", "kind"}


@dataclass(frozen=True)
class Experiment:
    name: str
    requests: tuple[RunRequest, ...]
    batch_size: int
    spec: dict[str, Any]

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.spec).encode()).hexdigest()

    def renamed(self, name: str) -> Experiment:
        return replace(self, name=name, spec={**self.spec, "name": name})


class _Where:
    """Names the file, line and key path of a problem in an experiment file."""

    def __init__(self, source: object):
        self.source = source

    def error(self, node: Any, path: str, message: str) -> DataError:
        line = getattr(node, "line", None)
        return DataError(self.source, line, f"{path}: {message}" if path else message)


def load_file(path: Path) -> Experiment:
    """Read and check an experiment file; errors name the file, line and key."""
    data = read_yaml(path)
    return parse(data, _Where(path), default_name=Path(path).stem)


def parse(data: Any, where: _Where | None = None, default_name: str | None = None) -> Experiment:
    where = where or _Where("experiment")
    if not isinstance(data, Mapping):
        raise where.error(data, "", "an experiment is a mapping with 'models' and 'benchmarks'")
    _no_unknown_keys(data, TOP_KEYS, "", where)
    name = str(data.get("name") or default_name or "")
    if not name:
        raise where.error(data, "name", "missing")
    batch_size = _int(data.get("batch_size", defaults.BATCH_SAMPLES), "batch_size", data, where, minimum=1)
    benchmarks = _list(data, "benchmarks", where)
    models = _list(data, "models", where)
    requests = []
    for i, model in enumerate(models):
        path = f"models[{i}]"
        if not isinstance(model, Mapping):
            raise where.error(data, path, "each model is a mapping with at least 'model'")
        _no_unknown_keys(model, MODEL_KEYS, path, where)
        if "model" not in model:
            raise where.error(model, f"{path}.model", "missing (an alias, a model folder or a hub id)")
        for j, bench in enumerate(benchmarks):
            bench_path = f"benchmarks[{j}]"
            bench = {"name": bench} if isinstance(bench, str) else bench
            if not isinstance(bench, Mapping) or "name" not in bench:
                raise where.error(data, bench_path, "a benchmark is a name or a mapping with 'name'")
            _no_unknown_keys(bench, BENCHMARK_KEYS, bench_path, where)
            for sampler, options in _samplers(model, data, path, where):
                if sampler != PLAIN:  # temperature and top-p are the plain sampler's; a power run is one run
                    requests.append(_request(data, model, bench, None, path, where, sampler, options))
                    continue
                for temperature in _temperatures(model, data, path, where):
                    requests.append(_request(data, model, bench, temperature, path, where))
    spec = {"name": name, "batch_size": batch_size, "runs": [_request_dict(r) for r in requests]}
    return Experiment(name, tuple(requests), batch_size, spec)


def _request(data: Mapping, model: Mapping, bench: Mapping, temperature: float | None, path: str, where: _Where,
             sampler: str = PLAIN, sampler_options: Mapping[str, Any] | None = None) -> RunRequest:
    def pick(key: str, default: Any) -> tuple[Any, Mapping, str]:
        """The value of ``key`` (the model's own, else the experiment's), its node and path."""
        if key in model:
            return model[key], model, f"{path}.{key}"
        return data.get(key, default), data, key

    def number(key: str, default: Any, kind: str, minimum: int = 0) -> Any:
        value, node, where_path = pick(key, default)
        if kind == "int":
            return _int(value, where_path, node, where, minimum=minimum)
        return _float(value, where_path, node, where)

    role = model.get("role")
    if role is not None and role not in ("base", "rlvr", "distilled", "instruct", "other"):
        raise where.error(model, f"{path}.role", f"'{role}' is not one of base, rlvr, distilled, instruct, other")
    template, node, template_path = pick("template", None)
    if template is not None and template not in TEMPLATES:
        raise where.error(node, template_path, f"unknown template '{template}' (known: {', '.join(TEMPLATES)})")
    options = model.get("engine_options", {})
    if not isinstance(options, Mapping):
        raise where.error(model, f"{path}.engine_options", "must be a mapping")
    plain = sampler == PLAIN
    given_max = pick("max_tokens", None)[0] is not None
    return RunRequest(
        model=str(model["model"]),
        benchmark=str(bench["name"]),
        n=number("n", defaults.N_SAMPLES, "int", minimum=1),
        temperature=_float(temperature, f"{path}.temperature", model, where) if plain else None,
        top_p=number("top_p", defaults.TOP_P, "float") if plain else None,
        max_tokens=number("max_tokens", defaults.MAX_TOKENS, "int", minimum=1) if plain or given_max else None,
        sampler=sampler,
        sampler_options=dict(sampler_options or {}),
        seed=number("seed", defaults.SEED, "int"),
        template=template,
        engine=str(pick("engine", defaults.ENGINE)[0]),
        engine_options=dict(options),
        model_name=str(model["name"]) if model.get("name") else None,
        role=role,
        family=model.get("family"),
        fields=tuple(bench.get("fields", ())),
        hf_split=str(bench.get("hf_split", "test")),
        hf_config=bench.get("hf_config"),
        limit=_int(bench["limit"], "limit", bench, where, minimum=1) if bench.get("limit") is not None else None,
        problems=tuple(str(p) for p in bench.get("problems", ())),
        kind=str(bench.get("kind", "math")),
    )


def _request_dict(r: RunRequest) -> dict[str, Any]:
    """The request as stored in the experiment's spec (and hashed): a plain run's entry has no
    sampler keys, so experiments submitted before samplers existed keep their hash."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in r.__dict__.items()}
    if r.sampler == PLAIN and not r.sampler_options:
        del out["sampler"], out["sampler_options"]
    return out


def _samplers(model: Mapping, data: Mapping, path: str, where: _Where) -> list[tuple[str, dict[str, Any]]]:
    """The ``samplers:`` axis (the model's own, else the experiment's; default plain): each entry
    a name, or a mapping with ``name`` and the sampler's options."""
    for source, prefix in ((model, f"{path}."), (data, "")):
        if "samplers" not in source:
            continue
        values = source["samplers"]
        if not isinstance(values, list) or not values:
            raise where.error(source, f"{prefix}samplers", "must be a non-empty list")
        out = []
        for i, entry in enumerate(values):
            here = f"{prefix}samplers[{i}]"
            entry = {"name": entry} if isinstance(entry, str) else entry
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise where.error(source, here, "a sampler is a name or a mapping with 'name' and its options")
            options = {k: v for k, v in entry.items() if k != "name"}
            try:
                spec = sampler_spec(str(entry["name"]), options)
            except ConfigError as exc:
                raise where.error(entry, here, str(exc)) from None
            # typed as the sampler reads them, so `-S block_tokens=32` and `block_tokens: 32` are one spec
            # (an option of another power sampler only, which sampler_spec leaves out, is left out here too)
            out.append((str(entry["name"]), {k: spec.options[k] for k in options if k in spec.options}))
        return out
    return [(PLAIN, {})]


def _temperatures(model: Mapping, data: Mapping, path: str, where: _Where) -> list[float]:
    for source in (model, data):
        if "temperatures" in source:
            values = source["temperatures"]
            if not isinstance(values, list) or not values:
                raise where.error(source, "temperatures", "must be a non-empty list")
            return values
        if "temperature" in source:
            return [source["temperature"]]
    return [defaults.TEMPERATURE]


def _list(data: Mapping, key: str, where: _Where) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise where.error(data, key, "missing or empty: give a list")
    return value


def _no_unknown_keys(node: Mapping, known: set[str], path: str, where: _Where) -> None:
    unknown = sorted(set(node) - known)
    if unknown:
        prefix = f"{path}." if path else ""
        raise where.error(node, prefix + unknown[0], f"unknown key (known: {', '.join(sorted(known))})")


def _int(value: Any, path: str, node: Any, where: _Where, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(node, path, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise where.error(node, path, f"must be >= {minimum}, got {value}")
    return value


def _float(value: Any, path: str, node: Any, where: _Where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(node, path, f"must be a number, got {value!r}")
    return float(value)


def from_flags(
    name: str | None,
    models: Sequence[str],
    roles: Sequence[str],
    benchmarks: Sequence[str],
    temperatures: Sequence[float],
    samplers: Sequence[str] = (),
    sampler_options: Mapping[str, Any] | None = None,
    **common: Any,
) -> Experiment:
    """The experiment the ``submit`` flags describe: each --model (with the --role at the same
    position) on each --benchmark with each --sampler (default plain), the plain sampler at each
    --temperature; each ``-S`` option goes to every sampler given that takes it."""
    if not models or not benchmarks:
        raise ConfigError("give an experiment file, or at least one --model and one --benchmark")
    if roles and len(roles) != len(models):
        raise ConfigError(f"{len(roles)} --role for {len(models)} --model: give one role per model, in order")
    entries = sampler_entries(samplers, sampler_options or {})
    power = [e["name"] for e in entries if e["name"] != PLAIN]
    for flag, given in (("--temperature", temperatures), ("--top-p", common.get("top_p") is not None)):
        if given and len(power) == len(entries):
            option = "proposal_temperature" if flag == "--temperature" else "top_p"
            raise ConfigError(f"{flag} is the plain sampler's; {', '.join(power)} draw(s) proposals with "
                              f"-S {option}=VALUE (or add --sampler plain)")
    data: dict[str, Any] = {k: v for k, v in common.items() if v is not None}
    data["models"] = [{"model": m, **({"role": roles[i]} if roles else {})} for i, m in enumerate(models)]
    data["benchmarks"] = list(benchmarks)
    if temperatures:
        data["temperatures"] = list(temperatures)
    if power:
        data["samplers"] = [e if len(e) > 1 else e["name"] for e in entries]
    default = "-".join([*models, *benchmarks, *power]).replace("/", "_")
    return parse(data, _Where("flags"), default_name=name or default)


# --- the database ----------------------------------------------------------------------

def resolve_all(experiment: Experiment, data_dir: Path | None) -> list[tuple[RunSpec, list[Problem]]]:
    """Check every run of the experiment before anything is written."""
    return [resolve(r, data_dir) for r in experiment.requests]


def register_experiment(
    session: Session, experiment: Experiment, resolved: Sequence[tuple[RunSpec, list[Problem]]]
) -> tuple[int, list[int]]:
    """Store the experiment and its runs (prompts rendered here unless they need the model's
    chat template, which the sampling worker renders). The same experiment submitted again
    returns the runs it already has; a different one under the same name is refused."""
    row = session.scalars(select(schema.Experiment).where(schema.Experiment.name == experiment.name)).one_or_none()
    if row is not None and row.spec_hash != experiment.spec_hash:
        raise ConfigError(
            f"experiment '{experiment.name}' already exists with other runs or settings; give this one another name"
        )
    if row is None:
        row = schema.Experiment(name=experiment.name, spec=experiment.spec, spec_hash=experiment.spec_hash)
        session.add(row)
        session.flush()
    run_ids: list[int] = []
    linked = set(
        session.scalars(select(schema.ExperimentRun.run_id).where(schema.ExperimentRun.experiment_id == row.id))
    )
    for spec, problems in resolved:
        template = TEMPLATES[spec.template]

        def render(p: Problem, template=template) -> str | None:
            return None if template.uses_chat_template else template.render(p)

        run_id, _ = register(session, spec, problems, render)
        if run_id not in run_ids:
            run_ids.append(run_id)
        if run_id not in linked:
            session.add(schema.ExperimentRun(experiment_id=row.id, run_id=run_id))
            linked.add(run_id)
    session.flush()
    return row.id, run_ids


def experiment_runs(session: Session, name: str) -> list[int]:
    """The ids of the experiment's runs, oldest first; ``NotFound`` for an unknown name."""
    return find_runs(session, experiment=name)


def run_batch_size(session: Session, run_id: int) -> int:
    """Samples per queue message for the run: the ``batch_size`` of the experiment it was
    submitted with (of several, the most recently created), ``defaults.BATCH_SAMPLES`` for a
    run in no experiment."""
    spec = session.scalars(
        select(schema.Experiment.spec)
        .join(schema.ExperimentRun, schema.ExperimentRun.experiment_id == schema.Experiment.id)
        .where(schema.ExperimentRun.run_id == run_id)
        .order_by(schema.Experiment.created_at.desc(), schema.Experiment.id.desc())
        .limit(1)
    ).first()
    return int((spec or {}).get("batch_size", defaults.BATCH_SAMPLES))
