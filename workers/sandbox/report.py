"""The sandbox's report on one sample, typed: what the judge and the server say (status, per-test
outcomes, first failure, a retry, a restart...), and its JSON on the wire. Standard library only
(run in the server; the host decodes the same class)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

STATUSES = ("passed", "failed", "timeout", "crashed", "syntax-error", "load-error", "error", "recorded", "need-plan")
"""A report's ``status``: the sample's verdict, ``error`` (the grading itself failed),
``recorded`` (a reference run's outputs), or ``need-plan`` (the server lacks the job's plan)."""


@dataclasses.dataclass
class Report:
    """A sample's report. A field left None is absent from the JSON (``first_failure`` goes
    with ``tests``: a passed sample's is null). ``report["status"]`` and ``report.get`` read the
    JSON form, as a caller reading the wire would."""

    status: str
    tests: dict[str, str] | None = None
    """One letter per test, by group (``judge.OUTCOMES``)."""
    passed: int | None = None
    total: int | None = None
    first_failure: dict[str, Any] | None = None
    """group, test, outcome, message of the first test that did not pass."""
    salvaged_lines: int | None = None
    """Trailing lines dropped from a program that did not parse as sent."""
    seconds: float | None = None
    retried: float | None = None
    """The factor on every limit of a second try after a timeout."""
    outputs: dict[str, list] | None = None
    """A reference run's recorded outputs, by group."""
    error: str | None = None
    """Why the grading itself failed."""
    trace: str | None = None
    need_plan: str | None = None
    """The plan key the server asks the host to send again."""
    restart: bool = False
    """The sample left the sandbox unusable: the host starts a new one."""

    @property
    def failed_to_grade(self) -> bool:
        return self.status == "error"

    @property
    def timed_out(self) -> bool:
        """Whether a time limit is the sample's (first) failure."""
        return self.status == "timeout" or (self.first_failure or {}).get("outcome") == "timeout"

    def to_json(self) -> dict[str, Any]:
        data = {name: value for name, value in self.__dict__.items() if value is not None}
        if self.tests is not None:
            data.setdefault("first_failure", None)
        if not self.restart:
            del data["restart"]
        return data

    def encode(self) -> bytes:
        return json_bytes(self.to_json())

    @classmethod
    def decode(cls, data: bytes) -> Report:
        """The report ``encode`` made (ValueError if it is not one)."""
        return cls.from_json(json.loads(data))

    @classmethod
    def from_json(cls, data: object) -> Report:
        if not isinstance(data, dict) or not isinstance(data.get("status"), str) or not _FIELDS.issuperset(data):
            raise ValueError(f"not a sandbox report: {str(data)[:200]}")
        return cls(**data)

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)


def grading_error(message: str) -> Report:
    """The grading itself failed (not the sample): ``error`` says why."""
    return Report("error", error=message)


def sample_failure(status: str, outcome: str, message: str, restart: bool = False) -> Report:
    """A sample failed before any test could say so (it crashed the sandbox, left it unusable)."""
    return Report(status, tests={}, passed=0, total=0, restart=restart,
                  first_failure={"group": None, "test": None, "outcome": outcome, "message": message})


def json_bytes(value: object) -> bytes:
    """JSON of a report or a server message, whatever text the candidate put in it (a lone
    surrogate becomes '?'; what JSON cannot hold, its repr)."""
    return json.dumps(value, ensure_ascii=False, default=repr).encode("utf-8", "replace")


_FIELDS = frozenset(field.name for field in dataclasses.fields(Report))
