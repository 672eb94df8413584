"""Test plans: what a code problem's original record says to run, in the form the sandbox runs
it, and the program a completion stands for.

Record formats understood (by their fields):

- HumanEval / HumanEval+: ``prompt``, ``entry_point``, ``test`` (a ``check(candidate)``), and for
  HumanEval+ ``base_input`` / ``plus_input`` with ``atol``: the inputs are run against the outputs
  of ``prompt + canonical_solution``, each with a time limit from the reference's own time, as
  EvalPlus does. Both the ``check`` and the inputs must pass.
- MBPP+: ``entry_point``, ``base_input``, ``plus_input``, ``canonical_solution`` (EvalPlus; the
  inputs of some tasks are turned back into tuples, sets and complex numbers as EvalPlus does).
- MBPP (full or sanitized): ``test_list`` of asserts, with ``test_imports`` or ``test_setup_code``.
- stdin/stdout (LiveCodeBench, Codeforces, APPS): ``tests`` as ``[{"input", "output"}]``, or
  ``input_output`` (APPS), or ``public_test_cases`` / ``private_test_cases`` (LiveCodeBench), with an
  optional ``time_limit`` in seconds.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import json
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from boundary.api import defaults
from boundary.api.errors import ConfigError, GradingError


class UnknownTests(GradingError):
    """A record with no tests this grader knows how to run."""


@dataclass(frozen=True)
class PlanOptions:
    """Time limits of a plan (see boundary.api.defaults for each value's reason)."""

    test_timeout_s: float = defaults.SANDBOX_TEST_TIMEOUT_S
    load_timeout_s: float = defaults.SANDBOX_LOAD_TIMEOUT_S
    min_time_limit_s: float = defaults.SANDBOX_MIN_TIME_LIMIT_S
    time_limit_factor: float = defaults.SANDBOX_TIME_LIMIT_FACTOR
    sample_timeout_s: float = defaults.SANDBOX_SAMPLE_TIMEOUT_S
    stdio_timeout_s: float = defaults.SANDBOX_STDIO_TIMEOUT_S
    output_bytes: int = defaults.SANDBOX_OUTPUT_BYTES
    reference_timeout_s: float = defaults.SANDBOX_REFERENCE_TIMEOUT_S

    def __post_init__(self) -> None:
        for name in ("test_timeout_s", "load_timeout_s", "min_time_limit_s", "time_limit_factor",
                     "sample_timeout_s", "stdio_timeout_s", "reference_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TestPlan:
    """One problem's tests, ready for the sandbox.

    ``groups`` are dicts as the sandbox's judge reads them: ``script`` (test code whose asserts
    are the tests), ``calls`` (inputs for the entry point, compared with a reference's outputs),
    or ``stdio`` (stdin, expected stdout). ``reference`` is the program whose outputs a
    ``calls`` group without ``expected`` values still needs."""

    mode: str
    prefix: str
    entry_point: str | None
    setup: str
    names: tuple[str, ...]
    groups: tuple[dict[str, Any], ...]
    reference: str | None = None
    load_timeout_s: float = defaults.SANDBOX_LOAD_TIMEOUT_S
    sample_timeout_s: float = defaults.SANDBOX_SAMPLE_TIMEOUT_S
    reference_timeout_s: float = defaults.SANDBOX_REFERENCE_TIMEOUT_S
    notes: tuple[str, ...] = ()

    @property
    def needs_reference(self) -> bool:
        return any(g["kind"] == "calls" and "expected" not in g for g in self.groups)

    def payload(self, record: bool = False) -> dict[str, Any]:
        """What the sandbox needs; with ``record``, the calls groups only (a reference run)."""
        if not record:
            return self.sandbox_plan
        return {**self.sandbox_plan, "groups": [g for g in self.groups if g["kind"] == "calls"]}

    @cached_property
    def sandbox_plan(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "setup": self.setup, "names": list(self.names), "groups": list(self.groups),
            "load_timeout_s": self.load_timeout_s, "record_timeout_s": self.reference_timeout_s,
            "imports": imported_modules([self.setup, *(g["code"] for g in self.groups if g["kind"] == "script")]),
        }

    @cached_property
    def key(self) -> str:
        """A hash of the payload: names the plan in a sandbox's cache."""
        return hashlib.sha256(pickle.dumps(self.sandbox_plan, protocol=5)).hexdigest()[:32]

    @cached_property
    def timeout(self) -> float:
        return self.timeout_s()

    def timeout_s(self) -> float:
        """Wall time for one sample: loading, then every group's budget, within the cap."""
        total = self.load_timeout_s
        for group in self.groups:
            if group["kind"] == "script":
                total += group["timeout_s"]
            elif group["kind"] == "calls":
                total += sum(group.get("limits", ()))
            else:
                total += sum(group["limits"]) + 0.5 * len(group["limits"])
        return min(total, self.sample_timeout_s) + 1.0

    def with_reference(self, outputs: Mapping[str, Sequence[Sequence[Any]]], options: PlanOptions) -> TestPlan:
        """The plan with each calls group's expected values and time limits from a reference
        run's outputs. Inputs the reference could not answer are dropped (and noted)."""
        groups, notes = [], list(self.notes)
        for group in self.groups:
            if group["kind"] != "calls" or "expected" in group:
                groups.append(group)
                continue
            rows = outputs.get(group["name"], [])
            keep = [i for i, row in enumerate(rows) if row[0] in ("ok", "raise")]
            if len(keep) < len(group["inputs"]):
                notes.append(f"{group['name']}: {len(group['inputs']) - len(keep)} input(s) dropped: the reference "
                             "solution gave no answer for them")
            groups.append({
                **group,
                "inputs": [group["inputs"][i] for i in keep],
                "expected": [_expected(rows[i]) for i in keep],
                "limits": [max(options.min_time_limit_s, options.time_limit_factor * float(rows[i][2])) for i in keep],
            })
        return replace(self, groups=tuple(groups), notes=tuple(notes))


def imported_modules(sources: Sequence[str]) -> list[str]:
    """The modules the benchmark's own code imports (``import a.b`` gives ``a`` and ``a.b``): the
    only ones the sandbox's judge may load, whatever a candidate names."""
    found: dict[str, None] = {}
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                found.update((".".join(parts[:i]), None) for i in range(1, len(parts) + 1))
    return list(found)


def _expected(row: Sequence[Any]) -> tuple[str, Any]:
    import base64

    if row[0] == "ok":
        return ("ok", base64.b64decode(row[1]))
    return ("raise", str(row[1]))


# ---------------------------------------------------------------------------------------------
# From records to plans.


def plan_for(record: Mapping[str, Any], options: PlanOptions) -> TestPlan:
    """The test plan a problem's record describes; UnknownTests if it has none."""
    common = dict(load_timeout_s=options.load_timeout_s, sample_timeout_s=options.sample_timeout_s,
                  reference_timeout_s=options.reference_timeout_s)
    if _stdio_cases(record) is not None:
        return _stdio_plan(record, options, common)
    if "test_list" in record:
        return _mbpp_plan(record, options, common)
    if "entry_point" in record and any(k in record for k in ("test", "base_input", "plus_input")):
        return _evalplus_plan(record, options, common)
    raise UnknownTests("the problem has no tests this grader can run (expected HumanEval's test, MBPP's "
                       "test_list, EvalPlus's base_input/plus_input, or stdin/stdout tests)")


def _evalplus_plan(record: Mapping[str, Any], options: PlanOptions, common: dict) -> TestPlan:
    entry = str(record["entry_point"])
    prompt = str(record.get("prompt") or "")
    task = str(record.get("task_id", ""))
    dataset = "humaneval" if task.startswith("HumanEval") else "mbpp" if task.startswith("Mbpp") else None
    groups: list[dict[str, Any]] = []
    if record.get("test"):
        groups.append({"name": "check", "kind": "script", "code": f"{record['test']}\ncheck({entry})\n",
                       "timeout_s": options.test_timeout_s})
    for name in ("base", "plus"):
        inputs = record.get(f"{name}_input")
        if inputs:
            if dataset == "mbpp":
                inputs = mbpp_deserialize_inputs(task, inputs)
            groups.append({"name": name, "kind": "calls", "entry": entry, "inputs": [list(i) for i in inputs],
                           "atol": float(record.get("atol") or 0), "dataset": dataset})
    if not groups:
        raise UnknownTests("the problem's test, base_input and plus_input are all empty")
    reference = None
    if any(g["kind"] == "calls" for g in groups):
        solution = record.get("canonical_solution")
        if not solution:
            raise UnknownTests("base_input/plus_input need a canonical_solution to compare with")
        reference = prompt + str(solution)
    return TestPlan("function", prompt, entry, prompt, (entry,), tuple(groups), reference, **common)


def _mbpp_plan(record: Mapping[str, Any], options: PlanOptions, common: dict) -> TestPlan:
    tests = [str(t) for t in record["test_list"]] + [str(t) for t in record.get("challenge_test_list") or []]
    if not tests:
        raise UnknownTests("the problem's test_list is empty")
    code = "\n".join(tests) + "\n"
    imports = [str(i) for i in record.get("test_imports") or []]
    setup_code = str(record.get("test_setup_code") or "")
    reference = str(record.get("code") or "")
    used = set(_free_names(code))
    defined, reference_imports = _top_level(reference)
    names = [n for n in defined if n in used]
    if not names:  # no reference to tell the program's names: those the tests use that nothing else binds
        bound = set(_top_level("\n".join([*imports, setup_code]))[0]) | set(dir(builtins))
        names = [n for n in _free_names(code) if n not in bound]
    setup = "\n".join([*imports, *(i for n, i in reference_imports if n in used), setup_code])
    groups = ({"name": "check", "kind": "script", "code": code, "timeout_s": options.test_timeout_s},)
    entry = names[0] if names else None
    return TestPlan("function", "", entry, setup, tuple(names), groups, None, **common)


def _stdio_plan(record: Mapping[str, Any], options: PlanOptions, common: dict) -> TestPlan:
    cases = _stdio_cases(record) or []
    if not cases:
        raise UnknownTests("the problem's stdin/stdout tests are empty")
    limit = _time_limit(record.get("time_limit")) or options.stdio_timeout_s
    cap = max(options.output_bytes, 2 * max(len(out.encode()) for _inp, out in cases))
    group = {"name": "tests", "kind": "stdio", "cases": cases, "limits": [limit] * len(cases), "cap": cap}
    return TestPlan("stdio", "", None, "", (), (group,), None, **common)


def _stdio_cases(record: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """(stdin, expected stdout) pairs, or None when the record has no stdio tests."""
    if isinstance(record.get("tests"), list) and all(isinstance(t, Mapping) and "input" in t for t in record["tests"]):
        return [(str(t["input"]), str(t.get("output", ""))) for t in record["tests"]]
    if "input_output" in record:
        data = record["input_output"]
        data = json.loads(data) if isinstance(data, str) else data
        if not isinstance(data, Mapping) or data.get("fn_name"):
            raise UnknownTests("APPS call-based problems (fn_name) are not supported; stdin/stdout ones are")
        return [(_text(i), _text(o)) for i, o in zip(data.get("inputs", []), data.get("outputs", []))]
    if "public_test_cases" in record:
        cases = []
        for field_name in ("public_test_cases", "private_test_cases"):
            for case in _lcb_cases(record.get(field_name)):
                if case.get("testtype", "stdin") != "stdin":
                    raise UnknownTests("LiveCodeBench functional tests are not supported; stdin ones are")
                cases.append((str(case["input"]), str(case["output"])))
        return cases
    return None


def _lcb_cases(value: Any) -> list[Mapping[str, Any]]:
    """LiveCodeBench stores tests as a JSON string, private ones zlib-compressed and base64-encoded
    inside a pickle of that string."""
    if not value:
        return []
    if isinstance(value, list):
        return value
    try:
        return json.loads(value)
    except ValueError:
        pass
    import base64
    import zlib

    text = _pickled_text(zlib.decompress(base64.b64decode(value)))
    if not isinstance(text, str):
        raise UnknownTests("private_test_cases is not in LiveCodeBench's format")
    return json.loads(text)


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        raise UnknownTests(f"private_test_cases names {module}.{name}: not LiveCodeBench's format")


def _pickled_text(data: bytes) -> object:
    """A pickle that may hold only plain values (LiveCodeBench's pickled JSON text): with no
    global to load, nothing can be called or have an attribute set."""
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except UnknownTests:
        raise
    except Exception as exc:  # noqa: BLE001 - any error a malformed pickle raises
        raise UnknownTests(f"private_test_cases is not in LiveCodeBench's format ({type(exc).__name__})") from None


def _text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def _time_limit(value: Any) -> float | None:
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    if isinstance(value, Mapping):  # CodeContests: {"seconds": 2, "nanos": 0}
        seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        return seconds or None
    return None


def _free_names(source: str) -> list[str]:
    from boundary.workers.sandbox.asserts import free_names

    return free_names(source)


def _top_level(source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Names a program defines at its top level, and its import statements [(name, text)]."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], []
    defined: list[str] = []
    imports: list[tuple[str, str]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.extend(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            text = ast.get_source_segment(source, node) or ""
            imports.extend(((a.asname or a.name).split(".")[0], text) for a in node.names)
    return defined, imports


# EvalPlus's mbpp_deserialize_inputs (evalplus/data/mbpp.py): MBPP+ stores tuples, sets and
# complex numbers as JSON lists and strings; these tasks get them back.
_TUPLES = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740, 744, 809}
_NESTED_TUPLES = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_FIRST_TUPLE_LIST = {75, 413, 444, 753}
_FIRST_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_NESTED_THEN_TUPLE = {259, 401, 445}
_ALL_TUPLES = {580, 615, 791}


def mbpp_deserialize_inputs(task_id: str, inputs: list) -> list:
    number = int(task_id.split("/")[-1])
    if number in _TUPLES:
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if number in _NESTED_TUPLES:
        return [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
    if number in _FIRST_TUPLE_LIST:
        return [[[tuple(lst) for lst in inp[0]]] + [inp[1]] for inp in inputs]
    if number in (106, 750):
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if number == 115:
        return [[[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]] for inp in inputs]
    if number == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if number in _FIRST_TUPLE:
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if number in _NESTED_THEN_TUPLE:
        nested = [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in nested]
    if number == 278:
        first = [[[tuple(item) if isinstance(item, list) else item for item in inp[0]]] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in first]
    if number == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if number == 722:
        return [[{key: tuple(value) for key, value in inp[0].items()}] + inp[1:] for inp in inputs]
    if number == 252:
        return [[complex(inp[0])] for inp in inputs]
    if number in _ALL_TUPLES:
        return [_all_tuples(inp) for inp in inputs]
    return inputs


def _all_tuples(value: Any) -> Any:
    return tuple(_all_tuples(v) for v in value) if isinstance(value, list) else value


# ---------------------------------------------------------------------------------------------
# From a completion to the program that runs.

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_PYTHON = ("", "python", "py", "python3", "py3")


def _defines(code: str, name: str | None) -> bool:
    return bool(name) and re.search(rf"^(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None  # type: ignore[arg-type]


def extract_code(completion: str, entry_point: str | None = None) -> tuple[str, bool]:
    """The code in a model's output, and whether it came from a markdown fence: the first fenced
    block that defines the entry point, else the first Python block; text before a fence, when
    it is the code (a continuation that closes with a fence); else the whole completion (up to
    MBPP's ``[DONE]``)."""
    completion = completion.split("[DONE]")[0]  # MBPP's end marker
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(completion)]
    if not blocks:
        return completion, False
    head = completion[: completion.find("```")]
    for _lang, body in blocks:
        if _defines(body, entry_point):
            return body, True
    if head.strip() and (_defines(head, entry_point) or head.startswith((" ", "\t"))):
        return head, False
    for lang, body in blocks:
        if lang in _PYTHON:
            return body, True
    return blocks[0][1], True


def program_for(plan: TestPlan, completion: str) -> tuple[str, str | None]:
    """The program to run for ``completion``, and the code taken from it when that is not the
    completion as written (fenced), for the verdict's ``extracted`` field."""
    code, fenced = extract_code(completion, plan.entry_point)
    extracted = code if fenced else None
    if plan.mode == "stdio" or not plan.prefix:
        return code, extracted
    if _defines(code, plan.entry_point):
        return f"{plan.prefix}\n\n{code}", extracted
    return plan.prefix + code, extracted
