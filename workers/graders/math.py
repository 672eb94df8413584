"""Math answers graded with math-verify, in a child process that can be killed.

math-verify's own timeouts use SIGALRM: they work only in a main thread, and a Python signal
handler cannot interrupt sympy stuck inside one C call (a huge integer power). So they are off
here and the deadline is enforced from outside: one long-lived child process receives batches
over a pipe and streams one result per answer back; the parent waits for each result with a
deadline, and when an answer overruns (or the child dies) the child is killed and replaced,
the answer gets an error verdict and grading goes on with the rest of the batch.

The child is a fresh interpreter started with ``subprocess`` (exec, never a bare fork, so it
is safe in a process that holds threads), talking over a socket pair with multiprocessing's
``Connection``. Not ``multiprocessing.Process``: that refuses to start children from daemonic
processes (Celery's prefork workers), and under spawn or forkserver re-imports the caller's
main module in the child. Starting one takes about 0.5 s (imports and a warm-up answer), paid
once, and again only after a timeout or a crash.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from importlib.metadata import version as package_version
from itertools import islice
from multiprocessing.connection import Connection
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from boundary.api import defaults
from boundary.api.errors import ConfigError, GradingError
from boundary.api.types import GradeItem, ProgressFn, Verdict

EXTRACTION_CONFIG = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
"""Where the answer is in a model's output: a \\boxed{} first, then other LaTeX, then a plain
expression ("#### 18", "The answer is 18"), as math-verify recommends for model outputs.
References are parsed with the same config: math-verify caches one compiled config at a
time, and alternating two would rebuild its regexes on every call."""

BACKSTOP_GRACE_S = 2.0
"""Seconds past the deadline after which a child kills itself (SIGALRM, default action), so a
child whose parent vanished without killing it cannot compute forever. An answer that long is
over its deadline anyway: the parent reports a timeout either way."""

STARTUP_TIMEOUT_S = 60.0
"""Seconds a new child may take to say it is ready (it imports sympy and grades a warm-up
answer: about 0.5 s) before the grader gives up with a GradingError."""

READY = "ready"
"""The child's first message."""

CHILD_MAIN = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); import sys; "
    "from boundary.workers.graders.math import serve; serve(int(sys.argv[1]), float(sys.argv[2]))"
)
"""The child's program: Ctrl-C is the parent's to handle, from the first instruction."""

Result = tuple[bool, str | None, str | None, float]
"""What the child sends back per answer: correct, extracted text, error, seconds."""

Gold = list[Any]
"""A parsed reference: math-verify's list of sympy objects and strings."""


class _DropTimeoutWarning(logging.Filter):
    """Drops math-verify's "Timeout is disabled" warning: here that is on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def _silence_timeout_warning() -> None:
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTimeoutWarning) for f in logger.filters):
            logger.addFilter(_DropTimeoutWarning())


_silence_timeout_warning()


def answer_text(parsed: list[Any]) -> str | None:
    """The string form of a parse: the text math-verify matched, else the first object."""
    for value in reversed(parsed):
        if isinstance(value, str):
            return value
    return str(parsed[0]) if parsed else None


def extract_answer(completion: str) -> tuple[list[Any], str | None]:
    """The final answer of a model completion, parsed, and as text (None when there is none)."""
    parsed = parse(completion, EXTRACTION_CONFIG, parsing_timeout=None)
    return parsed, answer_text(parsed)


def parse_reference(reference: str) -> Gold:
    """A reference answer ("18", "\\frac{1}{2}", "2, 3") parsed as LaTeX: boxed, then between
    dollars, then as given; the first form that parses wins."""
    for text in (f"\\boxed{{{reference}}}", f"${reference}$", reference):
        parsed = parse(text, EXTRACTION_CONFIG, parsing_timeout=None)
        if parsed:
            return parsed
    return []


def grade_answer(reference: str, completion: str, golds: dict[str, Gold]) -> Result:
    """Grade one completion; ``golds`` caches parsed references. Never raises."""
    start = time.perf_counter()
    extracted: str | None = None
    try:
        gold = golds.get(reference)
        if gold is None:
            gold = golds[reference] = parse_reference(reference)
        parsed, extracted = extract_answer(completion)
        if not gold:
            return False, extracted, "cannot parse the reference answer", time.perf_counter() - start
        correct = bool(parsed) and verify(gold, parsed, timeout_seconds=None)
        return bool(correct), extracted, None, time.perf_counter() - start
    except Exception as exc:  # one bad answer must not stop the batch
        return False, extracted, _describe(exc), time.perf_counter() - start


def _describe(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    detail = f": {lines[0][:200]}" if lines else ""
    return f"{type(exc).__name__} in math-verify{detail}"


def serve(fd: int, timeout_s: float) -> None:
    """The child: receive batches of (reference, completion) on ``fd`` and send back a result
    per answer, until None or the parent is gone. An answer running ``BACKSTOP_GRACE_S`` past
    its deadline ends the process (SIGALRM's default action), should the parent be gone."""
    conn = Connection(fd)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    grade_answer("1", "\\boxed{1}", {})  # first calls build parsers: not on anyone's clock
    try:
        conn.send(READY)
        while (batch := conn.recv()) is not None:
            golds: dict[str, Gold] = {}
            for reference, completion in batch:
                signal.setitimer(signal.ITIMER_REAL, timeout_s + BACKSTOP_GRACE_S)
                result = grade_answer(reference, completion, golds)
                signal.setitimer(signal.ITIMER_REAL, 0)
                conn.send(result)
    except (EOFError, OSError):  # the parent closed its end or died
        return


def _batched(items: Iterable[GradeItem], size: int) -> Iterator[list[GradeItem]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class MathGrader:
    """math-verify behind the Grader protocol, with a per-answer wall-clock deadline.

    The child starts on first use and lives until ``close()`` (or the end of a ``with``
    block). One ``grade()`` at a time: a grader is not shared between threads.

    >>> with MathGrader() as grader:
    ...     [v.correct for v in grader.grade([GradeItem(1, "18", "The answer is 18")])]
    [True]
    """

    name = "math-verify"

    def __init__(self, timeout_s: float = defaults.GRADE_TIMEOUT_S, batch_size: int = defaults.GRADE_BATCH):
        if not timeout_s > 0:
            raise ConfigError(f"grading timeout must be > 0 seconds, got {timeout_s}")
        if batch_size < 1:
            raise ConfigError(f"grading batch size must be >= 1, got {batch_size}")
        self.version = package_version("math-verify")
        self.timeout_s = float(timeout_s)
        self.batch_size = batch_size
        self.startup_s: float | None = None
        """Seconds the last child took to start."""
        self.restarts = 0
        """Children killed or found dead so far."""
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> MathGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """Process id of the grading child, None when none runs."""
        return self._process.pid if self._process is not None else None

    def grade(self, items: Iterable[GradeItem], progress: ProgressFn | None = None) -> Iterator[Verdict]:
        """One verdict per item, in input order; progress is told after each batch."""
        for batch in _batched(items, self.batch_size):
            yield from self._grade_batch(batch)
            if progress is not None:
                progress(len(batch))

    def close(self) -> None:
        """Stop the child (politely, then by force). The grader can be used again after."""
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            try:
                self._conn.send(None)
                self._process.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()

    def _grade_batch(self, batch: list[GradeItem]) -> Iterator[Verdict]:
        done = 0
        try:
            while done < len(batch):
                conn = self._send(batch[done:])
                for item in batch[done:]:
                    verdict, alive = self._receive(conn, item)
                    done += 1
                    yield verdict
                    if not alive:
                        break
        finally:
            if done < len(batch):  # abandoned or interrupted: results still in flight
                self._stop()

    def _send(self, items: list[GradeItem]) -> Connection:
        payload = [(item.reference, item.completion) for item in items]
        conn = self._ensure_child()
        try:
            conn.send(payload)
            return conn
        except OSError:  # the child died while idle: one more try, with a new one
            self._stop()
            self.restarts += 1
        conn = self._ensure_child()
        try:
            conn.send(payload)
        except OSError as exc:
            self._stop()
            raise GradingError(f"cannot send work to the grading process: {exc}") from exc
        return conn

    def _receive(self, conn: Connection, item: GradeItem) -> tuple[Verdict, bool]:
        """The verdict for ``item``, and whether the child is still usable."""
        start = time.perf_counter()
        try:
            if conn.poll(self.timeout_s):
                correct, extracted, error, seconds = conn.recv()
                return Verdict(item.key, correct, extracted, error, seconds), True
            timed_out = True
        except (EOFError, OSError):
            timed_out = False
        exitcode = self._stop()
        self.restarts += 1
        if timed_out or exitcode == -signal.SIGALRM:  # SIGALRM: the child's own backstop
            error = f"timeout after {self.timeout_s:g}s"
        else:
            error = f"grading process died ({_exit_reason(exitcode)})"
        return Verdict(item.key, False, None, error, time.perf_counter() - start), False

    def _ensure_child(self) -> Connection:
        if self._process is not None and self._conn is not None and self._process.poll() is None:
            return self._conn
        self._stop()
        start = time.perf_counter()
        ours, theirs = socket.socketpair()
        args = [sys.executable, "-c", CHILD_MAIN, str(theirs.fileno()), repr(self.timeout_s)]
        try:
            self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        except OSError as exc:
            ours.close()
            raise GradingError(f"cannot start the grading process: {exc}") from exc
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._await_ready(self._conn)
        self.startup_s = time.perf_counter() - start
        return self._conn

    def _await_ready(self, conn: Connection) -> None:
        try:
            if conn.poll(STARTUP_TIMEOUT_S) and conn.recv() == READY:
                return
            problem = f"not ready after {STARTUP_TIMEOUT_S:g}s"
        except (EOFError, OSError):
            problem = "it exited"
        exitcode = self._stop()
        raise GradingError(f"the grading process failed to start: {problem} ({_exit_reason(exitcode)})")

    def _stop(self) -> int | None:
        """Kill and reap the child if any; its exit code (negative: the signal that ended it)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        return process.wait()
