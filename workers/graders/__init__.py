"""Graders behind one interface (boundary.api.types.Grader), chosen by the benchmark's kind: math
answers with math-verify (``boundary.workers.graders.math``); code runs against its tests in the sandbox
(``boundary.workers.graders.code``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boundary.api.errors import ConfigError
from boundary.api.types import Grader


def open_grader(kind: str, **options: Any) -> Grader:
    """A new grader for benchmarks of ``kind``; the caller closes it.

    For ``code``: ``sandbox`` (``auto``, ``bwrap``, ``docker``) and ``unsafe_no_sandbox``
    (run code with no isolation at all) choose where code runs; the sandbox starts on first use.
    """
    if kind == "math":
        from boundary.workers.graders.math import MathGrader

        return MathGrader(**options)
    if kind == "code":
        from boundary.workers.graders.code import CodeGrader

        return CodeGrader(**options)
    raise ConfigError(f"no grader for {kind} benchmarks")


def grader_opener(sandbox: str, unsafe_no_sandbox: bool = False) -> Callable[[str], Grader]:
    """``open_grader`` with where code runs fixed: math graders ignore the sandbox choice."""

    def open_for(kind: str) -> Grader:
        if kind == "code":
            return open_grader(kind, sandbox=sandbox, unsafe_no_sandbox=unsafe_no_sandbox)
        return open_grader(kind)

    return open_for
