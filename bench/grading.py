"""Answers graded per second per core: MathGrader against a bare math-verify loop.

    python bench/grading.py [--n 2000] [--rounds 2] [--data-dir ../shared/data]

Items come from MATH500 and GSM8K: for each problem its reference solution (a correct
completion, ending in \\boxed{...} or "#### N") and the solution of the next problem (a wrong
one, almost always). The reference is (a) the bare loop ``verify(parse(gold), parse(completion))``
with math-verify's defaults (its SIGALRM timeouts on), in this process; it is compared with (b)
``MathGrader``: a child process, per-answer deadline, batches over a pipe. The two are measured
alternately (a, b, a, b, ...) so that machine noise hits both.

Per core means CPU seconds, not wall time: (a) counts this process's CPU time; (b) counts this
process's CPU time (sending, receiving, building verdicts) plus the grading child's (read from
/proc), so using a second core does not flatter (b). Wall-clock rates are printed too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Tally  # noqa: E402
from math_verify import parse, verify  # noqa: E402

from boundary.api.types import GradeItem  # noqa: E402
from boundary.workers.graders.math import MathGrader  # noqa: E402

BENCHMARKS = ("math500.jsonl", "gsm8k_test.jsonl")


def load_items(data_dir: Path, n: int) -> list[GradeItem]:
    """n items, half correct and half wrong, both completions of a problem side by side."""
    pairs: list[GradeItem] = []
    per_file = (n + 1) // 2 // len(BENCHMARKS) + 1
    for name in BENCHMARKS:
        rows = [json.loads(line) for line in (data_dir / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = rows[:per_file]
        for i, row in enumerate(rows):
            wrong = rows[(i + 1) % len(rows)]["solution"]
            pairs.append(GradeItem((name, i, "right"), str(row["answer"]), row["solution"]))
            pairs.append(GradeItem((name, i, "wrong"), str(row["answer"]), wrong))
    return [pairs[i % len(pairs)] for i in range(n)]


def child_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, from /proc."""
    if pid is None:
        raise RuntimeError("no grading child running")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_bare(items: list[GradeItem]) -> tuple[float, float, int]:
    """(cpu s, wall s, correct) of the plain math-verify loop."""
    cpu, wall = time.process_time(), time.perf_counter()
    correct = sum(bool(verify(parse(item.reference), parse(item.completion))) for item in items)
    return time.process_time() - cpu, time.perf_counter() - wall, correct


def run_grader(grader: MathGrader, items: list[GradeItem]) -> tuple[float, float, int]:
    """(cpu s of parent + child, wall s, correct) of MathGrader over the same items."""
    pid = grader.pid
    cpu, child, wall = time.process_time(), child_cpu_s(pid), time.perf_counter()
    correct = sum(v.correct for v in grader.grade(items))
    if grader.pid != pid:
        raise RuntimeError("the grading child was restarted during the measurement")
    cpu_s = time.process_time() - cpu + child_cpu_s(pid) - child
    return cpu_s, time.perf_counter() - wall, correct


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="items per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating (bare, boundary) pairs")
    default_dir = os.environ.get("BOUNDARY_DATA_DIR") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir), help="benchmark JSONL folder")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    items = load_items(args.data_dir, args.n)
    with MathGrader() as grader:
        started = time.perf_counter()
        list(grader.grade(items[:50]))  # starts the child; first calls build parsers
        warm_s = time.perf_counter() - started
        print(f"grader child startup {grader.startup_s:.2f}s (with 50 warm-up answers: {warm_s:.2f}s)")
        run_bare(items[:50])
        bare, ours = Tally(), Tally()
        for round_ in range(1, args.rounds + 1):
            bare.add(len(items), *run_bare(items))
            ours.add(len(items), *run_grader(grader, items))
            print(
                f"round {round_}: bare {bare.per_core:.1f}/s per core ({bare.per_wall:.1f}/s wall), "
                f"boundary {ours.per_core:.1f}/s per core ({ours.per_wall:.1f}/s wall), so far"
            )
    print(f"correct: bare {bare.passed}/{bare.items}, boundary {ours.passed}/{ours.items}")
    print(
        f"ratio {ours.per_core / bare.per_core:.2f} (boundary {ours.per_core:.1f} answers/s vs "
        f"bare math-verify {bare.per_core:.1f} answers/s, per core)"
    )


if __name__ == "__main__":
    main()
