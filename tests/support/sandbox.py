"""Helpers of the sandbox tests: small test plans, running a program, what f() returns inside,
and the checks that a sample left nothing behind."""

from __future__ import annotations

import base64
from pathlib import Path

from boundary.api.types import CodeJob
from boundary.workers.sandbox.compare import plain_loads
from boundary.workers.sandbox.values import encode_value

TEST_TIMEOUT_S = 2.0


def plan(*groups: dict, names: tuple[str, ...] = ("f",), mode: str = "function") -> dict:
    return {"mode": mode, "setup": "", "names": list(names), "groups": list(groups), "load_timeout_s": 5.0,
            "record_timeout_s": 10.0}


def script(code: str) -> dict:
    return {"name": "check", "kind": "script", "code": code, "timeout_s": TEST_TIMEOUT_S}


EXPECT_TRUE = plan(script("assert f() is True\n"))
EXPECT_FIVE = plan(script("assert f() == 5\n"), {"name": "plus", "kind": "calls", "entry": "f", "inputs": [[]],
                                                 "expected": [("ok", encode_value(5))], "limits": [2.0], "atol": 0,
                                                 "dataset": None})
OBSERVE = plan({"name": "out", "kind": "calls", "entry": "f", "inputs": [[]], "atol": 0, "dataset": None})
GOOD = "def f():\n    return 5\n"


def run(sandbox, program: str, the_plan: dict = EXPECT_TRUE) -> dict:
    key = str(sorted(map(str, the_plan["groups"])))
    return sandbox.run(CodeJob(program, key, the_plan, 12.0))


def observe(sandbox, program: str):  # noqa: ANN201 - whatever f() returned inside
    """What ``f()`` returns inside the sandbox (or ("raised", type name))."""
    report = sandbox.run(CodeJob(program, "observe", OBSERVE, 30.0, record=True))
    assert report["status"] == "recorded", report
    kind, data, _seconds = report["outputs"]["out"][0]
    if kind == "ok":
        return plain_loads(base64.b64decode(data))
    return (kind, data)


def candidate_processes(sandbox) -> list[int]:
    """Live host processes running as the sandbox's candidate uid (root starts the sandbox: the
    uid is its own). A zombie (exited, waiting for its parent to collect it) is not alive."""
    uid = sandbox.describe()["candidate_uid"]
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if status.get("Uid", "").split()[:1] == [str(uid)] and not status.get("State", "").strip().startswith("Z"):
            found.append(int(entry.name))
    return found


def assert_unharmed(sandbox, starts: int) -> None:
    """Nothing of the sample survives on the host, the same sandbox answers, and grades a good
    sample correctly."""
    assert candidate_processes(sandbox) == []
    report = run(sandbox, GOOD, EXPECT_FIVE)
    assert report["status"] == "passed", report
    assert sandbox.starts == starts, "the sandbox had to be restarted"


def as_root(sandbox) -> bool:
    return bool(sandbox.describe().get("as_root"))
