"""The math grader against real math-verify: answers, extraction, and the hang protection."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from importlib.metadata import version

import math_verify.parser
import pytest

from boundary.api.errors import ConfigError
from boundary.api.types import GradeItem, Grader
from boundary.workers.graders.math import MathGrader, extract_answer, grade_answer, parse_reference

HANG = "So the answer is $\\boxed{9^{9^{9^{9}}}}$."
"""Takes sympy minutes (computing 9^(9^9), then worse) once math-verify's timeouts are off:
a bare parse + verify against "18" ran past 40 s, stuck in one C call no signal interrupts."""

CASES = [
    # (reference, completion, correct, extracted)
    ("18", "She makes 9 * 2 = $18 every day.\n#### 18", True, "18"),
    ("18", "#### 17", False, "17"),
    ("18", "So the answer is 18.", True, "18"),
    ("18", "The answer is 17.", False, "17"),
    ("18", "First \\boxed{18}, then I doubt: 19", True, "18"),
    ("0.5", "Hence $\\boxed{\\frac{1}{2}}$.", True, "\\frac{1}{2}"),
    ("\\frac{1}{2}", "The answer is 0.5", True, "0.5"),
    ("\\frac{1}{2}", "\\boxed{0.25}", False, "0.25"),
    ("1.6", "\\boxed{\\frac{8}{5}}", True, "\\frac{8}{5}"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "so $\\boxed{(3, \\frac{\\pi}{2})}$", True, "(3, \\frac{\\pi}{2})"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "so $\\boxed{(\\frac{\\pi}{2}, 3)}$", False, "(\\frac{\\pi}{2}, 3)"),
    ("[-2, 7)", "\\boxed{[-2,7)}", True, "[-2,7)"),
    ("[-2, 7)", "\\boxed{(-2,7)}", False, "(-2,7)"),
    ("(-\\infty, -2) \\cup (2, \\infty)", "\\boxed{(-\\infty,-2)\\cup(2,\\infty)}", True,
     "(-\\infty,-2)\\cup(2,\\infty)"),
    ("2, 3", "\\boxed{3, 2}", True, "3, 2"),
    ("2, 3", "The answers are $2$ and $3$.", True, "2 and 3"),
    ("2, 3", "\\boxed{2}", False, "2"),
    ("18", "I do not know how to solve this.", False, None),
    ("18", "", False, None),
]


@pytest.fixture(scope="module")
def grader():
    with MathGrader(timeout_s=5) as shared:
        yield shared


def started(grader: MathGrader) -> int:
    """The pid of the grader's child, starting it with one trivial answer."""
    assert [v.correct for v in grader.grade([GradeItem(0, "1", "\\boxed{1}")])] == [True]
    assert grader.pid is not None
    return grader.pid


@pytest.mark.parametrize("reference, completion, correct, extracted", CASES)
def test_grade_answer(reference: str, completion: str, correct: bool, extracted: str | None) -> None:
    start = time.perf_counter()
    result = grade_answer(reference, completion, {})
    elapsed = time.perf_counter() - start
    assert result[:3] == (correct, extracted, None)
    # the seconds the grading took: this call's own time, most of it (not part of it, not a constant)
    assert type(result[3]) is float and 0.5 * elapsed < result[3] <= elapsed, (result[3], elapsed)


def test_extract_answer_gives_text_or_none() -> None:
    parsed, text = extract_answer("Thus the answer is $\\boxed{\\frac{3}{4}}$.")
    assert parsed and text == "\\frac{3}{4}"
    assert extract_answer("no numbers here") == ([], None)


def test_parse_reference_multi_answer_is_a_set() -> None:
    assert str(parse_reference("2, 3")[0]) == "{2, 3}"
    assert parse_reference("\\frac{1}{2}")[-1] == "\\frac{1}{2}"


def test_gold_parses_are_cached_per_reference() -> None:
    golds: dict = {}
    grade_answer("18", "#### 18", golds)
    grade_answer("18", "#### 19", golds)
    assert list(golds) == ["18"]


def test_unparseable_reference_is_an_error_verdict() -> None:
    correct, _, error, _ = grade_answer("", "\\boxed{1}", {})
    assert not correct and error == "cannot parse the reference answer"


def test_timeout_warning_is_silenced(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(math_verify.parser, "TIMEOUT_WARNING_SHOWN", False)
    with caplog.at_level(logging.DEBUG, logger="math_verify"):
        extract_answer("\\boxed{1}")
    assert not [r for r in caplog.records if "Timeout is disabled" in r.getMessage()]


def test_is_a_grader_with_name_and_version(grader: MathGrader) -> None:
    assert isinstance(grader, Grader)
    assert grader.name == "math-verify"
    assert grader.version == version("math-verify")


def test_grader_matches_cases_in_order(grader: MathGrader) -> None:
    items = [GradeItem(i, ref, completion) for i, (ref, completion, _, _) in enumerate(CASES)]
    verdicts = list(grader.grade(items))
    assert [v.key for v in verdicts] == list(range(len(CASES)))
    assert [(v.correct, v.extracted, v.error) for v in verdicts] == [(c, e, None) for _, _, c, e in CASES]
    assert all(0 <= v.duration_s < 5 for v in verdicts)


def test_batches_and_progress() -> None:
    calls: list[int] = []
    items = [GradeItem(i, str(i), f"#### {i}") for i in range(5)]
    with MathGrader(batch_size=2) as small:
        verdicts = list(small.grade(items, calls.append))
    assert [(v.key, v.correct) for v in verdicts] == [(i, True) for i in range(5)]
    assert calls == [2, 2, 1]


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        MathGrader(timeout_s=0)
    with pytest.raises(ConfigError):
        MathGrader(batch_size=0)


def test_hang_times_out_then_grading_goes_on() -> None:
    items = [GradeItem("hang", "18", HANG), GradeItem("next", "\\frac{1}{2}", "so \\boxed{0.5}")]
    with MathGrader(timeout_s=2) as short:
        first_pid = started(short)
        start = time.monotonic()
        verdicts = short.grade(items)
        hung = next(verdicts)
        waited = time.monotonic() - start
        after = next(verdicts)
        assert short.pid not in (None, first_pid)
    assert (hung.key, hung.correct, hung.error) == ("hang", False, "timeout after 2s")
    assert 2 <= waited < 4.5
    assert (after.key, after.correct, after.error) == ("next", True, None)
    assert short.restarts == 1


def test_child_killed_mid_batch_is_restarted() -> None:
    items = [GradeItem("hang", "18", HANG), GradeItem("next", "18", "#### 18")]
    with MathGrader(timeout_s=60) as patient:
        pid = started(patient)
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        verdicts = list(patient.grade(items))
        killer.join()
        assert time.monotonic() - start < 10
        assert patient.pid not in (None, pid)
    assert (verdicts[0].correct, verdicts[0].error) == (False, "grading process died (signal SIGKILL)")
    assert (verdicts[1].correct, verdicts[1].error) == (True, None)


def test_child_ignores_ctrl_c(grader: MathGrader) -> None:
    pid = started(grader)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    assert [v.correct for v in grader.grade([GradeItem(1, "7", "#### 7")])] == [True]
    assert grader.pid == pid


def test_abandoned_iteration_leaves_no_stale_results(grader: MathGrader) -> None:
    first = grader.grade([GradeItem(i, "5", f"#### {i}") for i in range(4)])
    assert next(first).key == 0
    first.close()
    verdicts = list(grader.grade([GradeItem("a", "3", "#### 3"), GradeItem("b", "3", "#### 4")]))
    assert [(v.key, v.correct) for v in verdicts] == [("a", True), ("b", False)]


def test_close_is_idempotent_and_grader_reusable() -> None:
    grader = MathGrader()
    grader.close()
    assert [v.correct for v in grader.grade([GradeItem(1, "2", "#### 2")])] == [True]
    grader.close()
    grader.close()
    assert grader.pid is None
