"""Code answers graded by running them against their problem's tests in the sandbox.

Each item's record (the problem's original benchmark row) gives a test plan
(``boundary.workers.graders.code_plans``); tests compared with a reference solution's outputs
(HumanEval+, MBPP+) get them from one reference run per problem, made in the sandbox too and
kept for the grader's life. A sample's verdict is ``correct`` when every test passed; its
``details`` hold the per-test outcomes (one letter per test: P passed, F wrong answer, E
exception, T time limit, X process died, - not run), the first failure, and the status.
``error`` is reserved for failures of the grading itself (a problem with no runnable tests, a
reference solution that does not load, a sandbox that cannot start).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from boundary.api import __version__, defaults
from boundary.api.errors import ConfigError, GradingError
from boundary.api.types import CodeJob, GradeItem, ProgressFn, Sandbox, Verdict
from boundary.workers.graders.code_plans import PlanOptions, TestPlan, plan_for, program_for
from boundary.workers.sandbox import SandboxOptions, open_sandbox

PLAN_CACHE = 4096
"""Problems whose test plans (with recorded reference outputs) a grader keeps."""

REFERENCE_JOB_TIMEOUT_S = 600.0
"""Wall time for one reference run (all of a problem's inputs), seconds."""

DETAIL_KEYS = ("status", "tests", "passed", "total", "first_failure", "salvaged_lines", "retried")
"""What of the sandbox's report goes into a verdict's details."""


def fingerprint(record: Mapping[str, Any]) -> tuple:
    """Identifies a problem without hashing its (possibly megabytes of) inputs on every sample."""
    def sample(key: str) -> tuple[int | None, str]:
        value = record.get(key)
        if isinstance(value, (list, tuple)):
            return len(value), repr(value[-1:])[:2000]
        return None, repr(value)[:2000]

    return (
        str(record.get("task_id", record.get("id"))), str(record.get("prompt", "")), str(record.get("test", "")),
        str(record.get("entry_point", "")), str(record.get("canonical_solution", record.get("code", ""))),
        repr(record.get("atol")), *(sample(k) for k in ("base_input", "plus_input", "test_list", "tests")),
        str(record.get("input_output", ""))[:2000], str(record.get("public_test_cases", ""))[:2000],
    )


class CodeGrader:
    """The sandbox behind the Grader protocol: ``workers`` sandboxes grade in parallel (each a
    warm fork server; one is what a fleet worker process holds).

    >>> with CodeGrader() as grader:  # doctest: +SKIP
    ...     [v.correct for v in grader.grade([GradeItem(1, "", "    return a + b\\n", record)])]
    """

    name = "code-sandbox"

    def __init__(
        self,
        sandbox: str = defaults.SANDBOX,
        *,
        unsafe_no_sandbox: bool = False,
        options: SandboxOptions | None = None,
        plan_options: PlanOptions | None = None,
        all_tests: bool = False,
        workers: int = 1,
        sandbox_factory: Any = None,
    ):
        if workers < 1:
            raise ConfigError(f"sandbox workers must be >= 1, got {workers}")
        self.backend = "none" if unsafe_no_sandbox else sandbox
        self.options = options or SandboxOptions()
        self.plan_options = plan_options or PlanOptions()
        self.all_tests = all_tests
        self.workers = workers
        self._factory = sandbox_factory or (
            lambda: open_sandbox(sandbox, self.options, unsafe_no_sandbox=unsafe_no_sandbox))
        self._sandboxes: list[Sandbox] = []
        self._idle: queue.SimpleQueue[Sandbox] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple, TestPlan | GradingError] = OrderedDict()
        self._plan_locks: dict[tuple, threading.Lock] = {}
        self.version = f"{__version__}/{self.backend}"

    def grade(self, items: Iterable[GradeItem], progress: ProgressFn | None = None) -> Iterator[Verdict]:
        """One verdict per item: in input order with one worker, as they finish with more."""
        if self.workers == 1:
            for item in items:
                yield self._with_sandbox(item)
                if progress is not None:
                    progress(1)
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")
        try:
            futures = [pool.submit(self._with_sandbox, item) for item in items]
            for future in as_completed(futures):
                yield future.result()
                if progress is not None:
                    progress(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _with_sandbox(self, item: GradeItem) -> Verdict:
        sandbox = self._checkout()
        try:
            return self.grade_one(item, sandbox)
        finally:
            self._idle.put(sandbox)

    def _checkout(self) -> Sandbox:
        """An idle sandbox, started when fewer than ``workers`` exist (GradingError if none can)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._sandboxes) < self.workers:
                sandbox = self._factory()
                self._sandboxes.append(sandbox)
                self.version = f"{__version__}/{sandbox.backend}"
                return sandbox
        return self._idle.get()

    def grade_one(self, item: GradeItem, sandbox: Sandbox) -> Verdict:
        start = time.perf_counter()
        try:
            plan = self.plan(item.record, sandbox)
        except GradingError as exc:
            return Verdict(item.key, False, None, str(exc), time.perf_counter() - start)
        if not isinstance(item.completion, str):
            raise ConfigError(f"completion of {item.key!r} must be text, got {type(item.completion).__name__}")
        program, extracted = program_for(plan, item.completion)
        job = CodeJob(program, plan.key, plan.sandbox_plan, plan.timeout, all_tests=self.all_tests)
        report = sandbox.run(job)
        wire = report.to_json()  # what the report holds, absent fields left out
        details = {k: wire[k] for k in DETAIL_KEYS if k in wire}
        if plan.notes:
            details["notes"] = list(plan.notes)
        correct = report.status == "passed"
        return Verdict(item.key, correct, extracted, report.error, time.perf_counter() - start, details)

    def plan(self, record: Mapping[str, Any], sandbox: Sandbox) -> TestPlan:
        """The problem's plan, with its reference outputs recorded (once per problem)."""
        key = fingerprint(record)
        with self._lock:
            lock = self._plan_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                cached = self._plans.get(key)
            if cached is None:
                try:
                    cached = self._complete(plan_for(record, self.plan_options), sandbox)
                except GradingError as exc:
                    cached = exc
            with self._lock:
                self._plans[key] = cached
                self._plans.move_to_end(key)
                while len(self._plans) > PLAN_CACHE:
                    old, _plan = self._plans.popitem(last=False)
                    self._plan_locks.pop(old, None)
        if isinstance(cached, GradingError):
            raise cached
        return cached

    def _complete(self, plan: TestPlan, sandbox: Sandbox) -> TestPlan:
        if not plan.needs_reference:
            return plan
        assert plan.reference is not None
        job = CodeJob(plan.reference, f"{plan.key}/reference", plan.payload(record=True),
                      REFERENCE_JOB_TIMEOUT_S, record=True)
        report = sandbox.run(job)
        if report.status != "recorded" or report.outputs is None:
            failure = report.first_failure or {}
            reason = report.error or failure.get("message") or report.status
            raise GradingError(f"the reference solution could not be run: {reason}")
        return plan.with_reference(report.outputs, self.plan_options)

    def close(self) -> None:
        with self._lock:
            sandboxes, self._sandboxes = self._sandboxes, []
            self._idle = queue.SimpleQueue()
        for sandbox in sandboxes:
            sandbox.close()

    def __enter__(self) -> CodeGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
