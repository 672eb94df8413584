"""Benchmarks: built-in files read from a data directory, a generated demo set, any JSONL
file with a field mapping, or a Hugging Face dataset id. Their versions in the database:
``boundary.api.benchmarks.store``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from boundary.api.benchmarks import arith, hf
from boundary.api.benchmarks.catalog import ALIASES, GENERATED, SPECS
from boundary.api.benchmarks.jsonl import FieldMap, problems_from_records, read_jsonl
from boundary.api.errors import ConfigError, UnknownName
from boundary.api.types import Kind, Problem


@dataclass(frozen=True)
class LoadedBenchmark:
    name: str
    kind: Kind
    source: str
    problems: tuple[Problem, ...]

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for problem in self.problems:
            digest.update(problem.content_hash.encode())
        return digest.hexdigest()


def known_names() -> list[str]:
    return sorted([*SPECS, *GENERATED])


def load_benchmark(
    name: str,
    data_dir: Path | None = None,
    *,
    fields: Sequence[str] = (),
    kind: Kind = "math",
    hf_split: str = "test",
    hf_config: str | None = None,
) -> LoadedBenchmark:
    """Resolve ``name``: a built-in benchmark, ``arith``, a JSONL path, or ``hf:DATASET_ID``."""
    canonical = ALIASES.get(name, name)
    if canonical in GENERATED:
        return LoadedBenchmark(canonical, "math", "generated:arith", tuple(arith.problems()))
    if canonical in SPECS:
        spec = SPECS[canonical]
        if data_dir is None:
            raise ConfigError(
                f"benchmark '{canonical}' is read from {spec.file}: set --data-dir or BOUNDARY_DATA_DIR "
                "to the folder that holds it"
            )
        path = Path(data_dir).expanduser() / spec.file
        if not path.is_file():
            raise ConfigError(f"benchmark '{canonical}': {path} not found (check --data-dir / BOUNDARY_DATA_DIR)")
        problems = problems_from_records(read_jsonl(path), spec.fields, path)
        return LoadedBenchmark(canonical, spec.kind, str(path.resolve()), tuple(problems))
    field_map = FieldMap.parse(fields, require_answer=kind == "math")
    if name.startswith("hf:"):
        dataset_id = name[3:]
        problems = hf.load(dataset_id, field_map, hf_split, hf_config)
        return LoadedBenchmark(dataset_id, kind, f"hf:{dataset_id}:{hf_config or ''}:{hf_split}", tuple(problems))
    path = Path(name).expanduser()
    if path.suffix in (".jsonl", ".json") or path.exists():
        if not path.is_file():
            raise ConfigError(f"benchmark file {path} not found")
        problems = problems_from_records(read_jsonl(path), field_map, path)
        return LoadedBenchmark(path.stem, kind, str(path.resolve()), tuple(problems))
    raise UnknownName("benchmark", name, [*known_names(), "PATH.jsonl", "hf:DATASET_ID"])


def select(problems: Sequence[Problem], limit: int | None = None, keys: Sequence[str] = ()) -> list[Problem]:
    """The problems named in ``keys`` (in the order given), else all; then the first ``limit``."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    chosen = list(problems)
    if keys:
        by_key = {p.key: p for p in problems}
        missing = [k for k in keys if k not in by_key]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ConfigError(f"{len(missing)} problem id(s) not in the benchmark: {shown}")
        chosen = [by_key[k] for k in dict.fromkeys(keys)]
    return chosen[:limit] if limit is not None else chosen


__all__ = ["FieldMap", "LoadedBenchmark", "known_names", "load_benchmark", "select"]
