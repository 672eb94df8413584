"""YAML files whose mappings remember their line, so errors can name the file, line and key
(experiment files, autoscaling policies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from boundary.api.errors import DataError


class _LineLoader(yaml.SafeLoader):
    """Remembers the line of every mapping, for error messages."""


class LineDict(dict):
    """A mapping read from YAML; ``line`` is where it starts (1-based)."""

    line: int | None = None


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    value = LineDict(loader.construct_mapping(node, deep=True))
    value.line = node.start_mark.line + 1
    return value


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def read_yaml(path: Path) -> Any:
    """The file's data; a file that cannot be read or parsed is a DataError naming it (and the line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DataError(path, mark.line + 1 if mark else None, f"not valid YAML ({problem})") from None
