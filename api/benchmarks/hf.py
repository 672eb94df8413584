"""Benchmarks from Hugging Face dataset ids (needs the `datasets` package and a network, or
a local dataset folder)."""

from __future__ import annotations

from boundary.api.benchmarks.jsonl import FieldMap, problems_from_records
from boundary.api.errors import ConfigError, DataError
from boundary.api.types import Problem


def load(dataset_id: str, fields: FieldMap, split: str, config: str | None) -> list[Problem]:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"benchmark '{dataset_id}' looks like a Hugging Face dataset id, which needs the `datasets` "
            "package: pip install 'boundary[datasets]'"
        ) from None
    datasets.disable_progress_bars()
    try:
        data = datasets.load_dataset(dataset_id, name=config, split=split)
    except Exception as exc:  # datasets raises many unrelated types for "not found / offline"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"hf:{dataset_id}", None, f"cannot load dataset (split '{split}'): {first}") from None
    records = ((i + 1, dict(row)) for i, row in enumerate(data))
    return problems_from_records(records, fields, f"hf:{dataset_id}[{split}]")
