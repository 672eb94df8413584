"""The fork server that runs inside the sandbox. Standard library only.

It is never imported inside the sandbox: the host sends the text of ``boundary.workers.sandbox.candidate``
and of this module to a bare interpreter started as ``python -S -c BOOTSTRAP server`` (see
``candidate.BOOTSTRAP``), which runs both, in order, as ``__main__``; the zygote runs only the
first. The host's tests import both for their pure parts (value checks, the assert rewriter, the
seccomp filter).

Processes, all inside the sandbox's own PID namespace, where the server is init (pid 1: signals
sent from inside the namespace cannot kill it):

    server ─┬─ judge      holds the tests and expected values, runs the tests, compares, and
            │             reports to the server over a socket only it holds
            └─ zygote ── candidate     one per sample: runs the sample's code; never sees a test
                            └─ run     stdio problems: one per test case

The zygote is a fresh interpreter (exec'd, not forked from the server) that imports the heavy
modules once (numpy...) and never receives tests or expected values: a candidate forked from it
finds nothing about the tests in its memory. The judge calls the candidate's functions over a
socket pair: arguments go out pickled (the judge's own data), results come back in the tagged
encoding of ``boundary.workers.sandbox.values``, which the judge decodes with its own code into plain
values (numbers, strings, containers: no class of the candidate's, so no ``__eq__`` of its own;
nothing imported, called or set as an attribute), then compares with ``==`` as the official
harnesses do. The candidate cannot write to the judge's report channel, see the tests, or stop
them early: exiting, ``atexit``, ``sys.settrace``, printing, or killing its parent all leave the
judge with missing answers, which fail. Nothing a candidate sends can change how a later sample
is graded (see ``judge_main``).

Where the sandbox is started by root (the server runs as root inside, with only the
capabilities it needs), the candidate runs as an unprivileged uid with an RLIMIT_NPROC (which
root ignores), and the judge as another uid under a seccomp filter of its own, so the candidate
can neither signal nor trace the judge, the zygote or the server. Everywhere, the candidate also
gets rlimits (CPU, address space, file size, open files, no core files), a seccomp filter (no
ptrace, no new namespaces, no keyrings, bpf, mounts, io_uring, inotify or affinity changes), a
fresh scratch space, and no open descriptor but its socket; after each sample the server kills
every process of the sample (one ``kill(-1)`` as the candidate's uid), waits for them, mounts new
tmpfs file systems over /tmp and /dev/shm and removes System V IPC objects, so nothing outlives
or leaks into the next sample. A cleanup that fails grades the sample failed and ends the server
(the host starts a new sandbox).
"""

from __future__ import annotations

import ast
import base64
import builtins
import collections
import ctypes
import decimal
import errno
import gc
import json
import math
import os
import pickle
import re
import resource
import select
import shutil
import signal
import socket
import sys
import time
import traceback

if __name__ != "__main__":  # on the host; in the sandbox the values and candidate modules ran first, in this namespace
    from boundary.workers.sandbox.values import Undecodable, decode_value, encode_value
    from boundary.workers.sandbox.candidate import (
        BOOTSTRAP, PR_SET_DUMPABLE, REPLY_TAGS, Closed, Reader, Timeout, TooLarge, _libc, become, describe,
        install_seccomp, isolate_fds, prctl, read_exact, reap, recv, seccomp_program, send, set_limit, shorten,
        write_all,
    )

MAX_REPLY = 128 << 20
"""Largest answer the judge decodes from a candidate (bytes): a bigger one fails its test (and a
reference solution's is dropped, with a note)."""

RECORD_FN = "__boundary_assert__"
"""Name the rewritten asserts call (see ``rewrite_asserts``)."""

ZYGOTE_TIMEOUT_S = 30.0
"""Seconds the zygote may take to start (it imports numpy) or to answer a request."""



def send_json(fd: int, value: object) -> None:
    send(fd, report_bytes(value))


# --------------------------------------------------------------------------------------------
# Plain values: what may cross from a candidate to the judge, and how they are compared.

def plain_loads(data: bytes) -> object:
    """A value from an untrusted process (``values.decode_value``: plain values built by the
    judge's own code; nothing is imported, called or set as an attribute), or Undecodable."""
    return decode_value(data)


def _number(x: object) -> bool:
    return type(x) in (int, float, bool)


def allclose(out: object, exp: object, rtol: float, atol: float) -> bool:
    """numpy.allclose for numbers and (nested) lists or tuples of numbers, without numpy."""
    if isinstance(exp, (list, tuple)):
        return isinstance(out, (list, tuple)) and len(out) == len(exp) and all(
            allclose(o, e, rtol, atol) for o, e in zip(out, exp)
        )
    if not (_number(out) and _number(exp)):
        return False
    if math.isinf(out) or math.isinf(exp):
        return out == exp
    return abs(out - exp) <= atol + rtol * abs(exp)


def _is_floats(x: object) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


# EvalPlus's special oracles (evalplus/eval/__init__.py and _special_oracle.py, v0.3).
MBPP_OUTPUT_SET_EQ_TASKS = frozenset({
    "similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
    "intersection_array", "find_dissimilar", "Diff",
})
MBPP_OUTPUT_NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})


def _poly(xs: list, x: float) -> float:
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(num1: int, num2: int) -> int:
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def _set_equal(out: object, exp: object) -> bool:
    try:
        return set(out) == set(exp)  # type: ignore[call-overload]
    except TypeError:
        return False


def evalplus_match(inp: list, out: object, exp: object, atol: float, dataset: str | None, entry: str) -> bool:
    """EvalPlus's output check (``evalplus.eval.unsafe_execute``): ``out == exp``, its special
    oracles, then ``allclose`` with its ``atol`` for floats. ``==`` is safe here: both sides are
    values the judge decoded itself (no ``__eq__`` of the candidate's), and it is what the
    official harnesses use, so ``1.0`` passes where ``1`` is expected and ``0`` where ``False``."""
    exact = out == exp
    if dataset == "mbpp":
        if entry == "are_equivalent":
            exact = True
        elif entry == "sum_div":
            exact = exact or out == 0
        elif entry == "surface_Area":
            exact = exact or (_number(out) and abs(out - _surface_area(*inp)) <= atol)
        elif entry == "digit_distance_nums":
            exact = exact or out == _digit_distance_nums(*inp)
        elif entry in MBPP_OUTPUT_SET_EQ_TASKS:
            exact = _set_equal(out, exp)
        elif entry in MBPP_OUTPUT_NOT_NONE_TASKS:
            exact = (out == exp) if isinstance(out, bool) else (exp == (out is not None))
    if dataset == "humaneval" and entry == "find_zero":
        return _number(out) and abs(_poly(*inp, out)) <= atol
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):  # type: ignore[arg-type]
            return False
        return allclose(out, exp, 1e-07, atol)
    return bool(exact)


def normalize_output(text: str) -> list[str]:
    """Output lines with surrounding whitespace and leading/trailing blank lines removed."""
    return [line.strip() for line in text.strip().splitlines()]


def output_matches(got: str, expected: str) -> bool:
    """Stdout against the expected output: equal line by line after whitespace normalization,
    or token by token where tokens that are both decimal numbers compare by value ("3.0" = "3")."""
    a, b = normalize_output(got), normalize_output(expected)
    if a == b:
        return True
    if len(a) != len(b):
        return False
    for line_a, line_b in zip(a, b):
        tokens_a, tokens_b = line_a.split(), line_b.split()
        if len(tokens_a) != len(tokens_b):
            return False
        for x, y in zip(tokens_a, tokens_b):
            if x == y:
                continue
            try:
                if decimal.Decimal(x) != decimal.Decimal(y):
                    return False
            except (decimal.InvalidOperation, ValueError):
                return False
    return True


def show(value: object) -> str:
    """A short repr with the type: ``3.0 (float)``."""
    try:
        return f"{shorten(repr(value), 120)} ({type(value).__name__})"
    except Exception:  # noqa: BLE001 - a repr must not break a report
        return f"<{type(value).__name__}>"


# --------------------------------------------------------------------------------------------
# Test code: asserts rewritten so that each one records its own outcome.


class _AssertRewriter(ast.NodeTransformer):
    def __init__(self, source: str):
        self.source = source

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        text = ast.get_source_segment(self.source, node) or f"assert on line {node.lineno}"
        thunk = ast.Lambda(
            args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                               defaults=[]),
            body=node.test,
        )
        call = ast.Call(ast.Name(RECORD_FN, ast.Load()), [ast.Constant(shorten(text, 160)), thunk], [])
        return ast.copy_location(ast.Expr(call), node)


def rewrite_asserts(source: str, filename: str = "<tests>"):  # noqa: ANN201 - a code object
    """Compile test code with every ``assert T`` turned into ``RECORD_FN(text, lambda: T)``."""
    tree = _AssertRewriter(source).visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")


def free_names(source: str) -> list[str]:
    """Names the code reads that it does not bind itself (candidates for the program's names)."""
    tree = ast.parse(source)
    loaded: dict[str, None] = {}
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded[node.id] = None
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return [name for name in loaded if name not in bound]


def proc_table() -> dict[int, tuple[int, str]]:
    """pid: (parent pid, state) for every live process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(root: int, table: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


_IPC_RMID = 0


def _sysv_ids(kind: str) -> list[int]:
    """Ids of the System V objects of one kind (read raw: four system calls, not a text file's
    seven, on every sample)."""
    try:
        fd = os.open(f"/proc/sysvipc/{kind}", os.O_RDONLY)
    except OSError:
        return []
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    column = 1  # "key <id> ..." in all three files
    return [int(line.split()[column]) for line in b"".join(chunks).splitlines()[1:] if line.strip()]


def sysv_leftovers() -> dict[str, list[int]]:
    return {kind: ids for kind in ("shm", "msg", "sem") if (ids := _sysv_ids(kind))}


def remove_sysv(leftovers: dict[str, list[int]]) -> None:
    for ident in leftovers.get("shm", []):
        _libc.shmctl(ident, _IPC_RMID, None)
    for ident in leftovers.get("msg", []):
        _libc.msgctl(ident, _IPC_RMID, None)
    for ident in leftovers.get("sem", []):
        _libc.semctl(ident, 0, _IPC_RMID)


def wipe(path: str) -> None:
    """Remove everything inside ``path`` (not ``path`` itself); any entry that cannot be removed
    raises (OSError, or RecursionError for a tree deeper than the interpreter's stack)."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


MNT_DETACH = 2
MS_NOSUID, MS_NODEV = 2, 4
PR_SET_PDEATHSIG = 1


def mount_tmpfs(path: str, size: int, inodes: int, mode: int) -> None:
    """Replace the file system at ``path`` with a new, empty tmpfs of ``size`` bytes and at most
    ``inodes`` files, its root folder of ``mode``. The old one is detached, and freed by the
    kernel with whatever it held (nothing of the sample runs any more)."""
    target = path.encode()
    if _libc.umount2(target, MNT_DETACH) != 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: nothing mounted
        raise OSError(ctypes.get_errno(), f"umount {path}: {os.strerror(ctypes.get_errno())}")
    options = f"size={size},nr_inodes={inodes},mode={mode:o}".encode()
    if _libc.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {path}: {os.strerror(ctypes.get_errno())}")


def scratch_state(path: str, workdir: str) -> tuple:
    """What changes when anything is done in the file system at ``path``: its files and blocks
    in use, and the times, mode, owner and extended attributes of its root folder (and of
    ``workdir`` within it): any file made, left, renamed, chmodded or tagged shows here."""
    fs = os.statvfs(path)
    folders = [path] + ([workdir] if os.path.dirname(workdir) == path else [])
    stats = []
    for folder in folders:
        try:
            st = os.lstat(folder)
            stats.append((st.st_ino, st.st_mode, st.st_uid, st.st_nlink, st.st_mtime_ns, st.st_ctime_ns,
                          tuple(os.listxattr(folder, follow_symlinks=False))))
        except OSError:
            stats.append(None)
    return fs.f_files - fs.f_ffree, fs.f_blocks - fs.f_bfree, *stats


def make_workdir(workdir: str, uid: int | None) -> None:
    """The sample's working directory: new, empty, private to the candidate's uid."""
    os.mkdir(workdir, 0o700)
    if uid is not None:
        os.chown(workdir, uid, uid)


# --------------------------------------------------------------------------------------------
# The judge: drives the candidate through the tests and reports per-test outcomes.


class Gone(BaseException):
    """The candidate process died, or answered with something that is not an answer."""


class Slow(BaseException):
    """The candidate did not answer before the deadline."""


class _StopGroup(BaseException):
    """Raised out of a test script after its first failure (when stopping early)."""


class Raised(Exception):
    """The candidate's function raised ``name`` (not a builtin exception type)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name


def _reraise(name: str, message: str) -> BaseException:
    """The candidate's exception as the builtin type of that name when there is one, so test
    code that expects, say, a ValueError sees one."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        try:
            error = kind(message)
            error.candidate_type = name  # type: ignore[attr-defined]
            return error
        except Exception:  # noqa: BLE001 - an exception type with a strange constructor
            pass
    return Raised(name, message)


class Link:
    """The judge's end of the socket to the candidate. Every answer is decoded as plain data."""

    def __init__(self, fd: int):
        self.fd = fd
        self.reader = Reader(fd)
        self.broken: BaseException | None = None

    def receive(self, deadline: float) -> tuple[bytes, bytes]:
        """The next answer: (tag, payload)."""
        if self.broken is not None:
            raise self.broken
        try:
            data = self.reader.frame(deadline, MAX_REPLY)
        except Timeout:
            self.broken = Slow()
            raise self.broken from None
        except TooLarge as exc:
            return b"T", str(exc).encode()
        except (Closed, OSError):
            self.broken = Gone("the candidate process died")
            raise self.broken from None
        tag = data[:1]
        if tag not in REPLY_TAGS:
            self.broken = Gone("answered out of protocol")
            raise self.broken
        return tag, data[1:]

    def send(self, message: tuple) -> None:
        if self.broken is not None:
            raise self.broken
        try:
            send(self.fd, pickle.dumps(message, protocol=5))
        except (Closed, OSError):
            self.broken = Gone("the candidate process died")
            raise self.broken from None

    def request(self, message: tuple, deadline: float) -> tuple[bytes, bytes]:
        self.send(message)
        return self.receive(deadline)

    def call(self, name: str, args: tuple, kwargs: dict, deadline: float) -> object:
        return self.answer(*self.request(("call", name, tuple(args), dict(kwargs)), deadline))

    def answer(self, tag: bytes, payload: bytes) -> object:
        """A call's result: the value, an Opaque stand-in, or the candidate's exception raised."""
        if tag == b"O":
            try:
                return plain_loads(payload)
            except Undecodable as exc:
                return Opaque(f"undecodable data ({exc})", None, "<undecodable>")
        if tag == b"T":
            return Opaque(f"{payload.decode()}: too large to compare", None, "<too large>")
        if tag in (b"R", b"U"):
            answer = self.decode(payload)
            if tag == b"R" and isinstance(answer, tuple) and len(answer) == 2:
                raise _reraise(str(answer[0]), str(answer[1]))
            if tag == b"U" and isinstance(answer, tuple) and len(answer) == 3 and answer[1] in (True, False, None):
                return Opaque(f"a {str(answer[0])[:200]} object", answer[1], str(answer[2])[:200])
        self.broken = Gone("answered out of protocol")
        raise self.broken

    def decode(self, payload: bytes) -> object:
        """A protocol message (not a return value): undecodable means the link is broken."""
        try:
            return plain_loads(payload)
        except Undecodable as exc:
            self.broken = Gone(f"answered with undecodable data ({exc})")
            raise self.broken from None


class Opaque:
    """Stands for a value the candidate returned that is not plain data (a ``re.Match``, an
    object of its own class): equal to nothing but itself, true or false as the candidate's
    process said (what returning True or False would have achieved), and otherwise unusable."""

    __slots__ = ("what", "truth", "text")

    def __init__(self, what: str, truth: bool | None, text: str):
        self.what, self.truth, self.text = what, truth, text

    def __bool__(self) -> bool:
        if self.truth is None:
            raise TypeError(f"the truth value of {self.what} returned by the candidate is unknown")
        return self.truth

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return self.text


class Remote:
    """Stands for one of the candidate's functions in the judge's test code."""

    def __init__(self, judge: "Judge", name: str):
        self._judge, self._name = judge, name

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._judge.link.call(self._name, args, kwargs, self._judge.call_deadline)

    def __repr__(self) -> str:
        return f"<candidate function {self._name}>"


class Judge:
    def __init__(self, link: Link, job: dict, plan: dict):
        self.link, self.job, self.plan = link, job, plan
        self.start = time.monotonic()
        self.scale = float(job.get("time_scale", 1.0))
        """Every time limit's factor: above 1 when a sample that timed out is graded again."""
        self.deadline = self.start + float(job["timeout_s"]) * self.scale
        self.call_deadline = self.deadline
        self.stop_early = not job.get("all_tests", False)
        self.tests: dict[str, str] = {}
        self.failure: dict | None = None

    def fail(self, group: str | None, index: int | None, outcome: str, message: str) -> None:
        if self.failure is None:
            self.failure = {"group": group, "test": index, "outcome": OUTCOMES[outcome], "message": shorten(message)}

    def run(self) -> dict:
        loaded = self.load()
        if loaded["ok"] and self.job.get("record"):
            return self.record()
        stopped = not loaded["ok"]
        if not stopped:
            self.bind_names(loaded)
        for group in self.plan["groups"]:
            name = group["name"]
            if stopped:
                self.tests[name] = "-" * _size(group)
                continue
            try:
                self.tests[name] = self.run_group(group)
            except _Abort as abort:
                self.tests[name] = abort.outcomes
                stopped = True
                continue
            if self.failure is not None and self.stop_early:
                stopped = True
        return self.report(loaded)

    def load(self) -> dict:
        deadline = min(self.start + float(self.plan["load_timeout_s"]) * self.scale, self.deadline)
        try:
            tag, payload = self.link.receive(deadline)
            info = self.link.decode(payload)
            if tag != b"L" or not (isinstance(info, dict) and isinstance(info.get("ok"), bool)):
                raise Gone("answered out of protocol")
        except Slow:
            info = {"ok": False, "kind": "timeout", "error": "loading the program took too long"}
        except Gone:
            info = {"ok": False, "kind": "crashed", "error": "the program ended the process while loading"}
        salvaged = info.get("salvaged_lines")
        info["salvaged_lines"] = salvaged if type(salvaged) is int and salvaged >= 0 else 0
        if not info["ok"]:
            kind = str(info.get("kind", "load-error"))
            self.fail(None, None, {"timeout": "T", "crashed": "X"}.get(kind, "L"), str(info.get("error", "")))
        return info

    def bind_names(self, loaded: dict) -> None:
        """The namespace the test scripts run in: the setup code, then the program's own
        definitions of the names the tests use (reported by the candidate once loaded)."""
        self.namespace = {"__name__": "__boundary_tests__", "__builtins__": builtins}
        if not any(g["kind"] == "script" for g in self.plan["groups"]):
            return
        exec(self.plan["setup_code"], self.namespace)  # noqa: S102 - the benchmark's own code
        wanted = set(self.plan.get("names", []))
        found = loaded.get("names")
        for name, entry in (found.items() if isinstance(found, dict) else ()):
            if name not in wanted or not isinstance(entry, tuple) or not entry:
                continue
            if entry[0] == "call":
                self.namespace[name] = Remote(self, name)
            elif entry[0] == "module" and len(entry) == 2 and entry[1] in self.plan.get("imports", ()):
                module = sys.modules.get(entry[1])  # imported by the server for this plan, never by name
                if module is not None:
                    self.namespace[name] = module
            elif entry[0] == "value" and len(entry) == 2 and isinstance(entry[1], bytes):
                try:
                    self.namespace[name] = plain_loads(entry[1])
                except Undecodable:
                    pass

    def run_group(self, group: dict) -> str:
        kind = group["kind"]
        if kind == "script":
            return self.run_script(group)
        if kind == "calls":
            return self.run_calls(group)
        return self.run_stdio(group)

    def run_script(self, group: dict) -> str:
        name, outcomes = group["name"], []
        self.call_deadline = min(time.monotonic() + float(group["timeout_s"]) * self.scale, self.deadline)

        def record(text: str, thunk) -> None:  # noqa: ANN001
            try:
                outcome, message = ("P", "") if thunk() else ("F", f"{text} failed")
            except (Slow, Gone):
                raise
            except Exception as exc:  # noqa: BLE001
                outcome, message = "E", f"{text}: {_raised(exc)}"
            outcomes.append(outcome)
            if outcome != "P":
                self.fail(name, len(outcomes) - 1, outcome, message)
                if self.stop_early:
                    raise _StopGroup

        self.namespace[RECORD_FN] = record
        try:
            exec(group["compiled"], self.namespace)  # noqa: S102 - the benchmark's tests
        except _StopGroup:
            pass
        except (Slow, Gone) as exc:
            outcomes.append("T" if isinstance(exc, Slow) else "X")
            self.fail(name, len(outcomes) - 1, outcomes[-1], _abort_message(exc, group["timeout_s"] * self.scale))
            raise _Abort("".join(outcomes)) from None
        except Exception as exc:  # noqa: BLE001 - the script itself raised, outside an assert
            outcomes.append("E")
            self.fail(name, len(outcomes) - 1, "E", f"the tests stopped: {_raised(exc)}")
        return "".join(outcomes)

    def run_calls(self, group: dict) -> str:
        """All inputs go to the candidate at once; its answers stream back, each read within its
        own time limit. Stopping early closes the link, which stops the candidate."""
        name, entry, outcomes = group["name"], group["entry"], []
        inputs, expected, limits = group["inputs"], group["expected"], group["limits"]
        if inputs:
            self.link.send(("batch", entry, [tuple(args) for args in inputs]))
        for i, args in enumerate(inputs):
            if outcomes and outcomes[-1] != "P" and self.stop_early:
                break
            self.call_deadline = min(time.monotonic() + float(limits[i]) * self.scale, self.deadline)
            outcome, message = self._one_call(entry, args, expected[i], group)
            outcomes.append(outcome)
            if outcome != "P":
                self.fail(name, i, outcome, message)
            if outcome in "TX":
                raise _Abort("".join(outcomes) + "-" * (len(inputs) - len(outcomes)))
        if len(outcomes) < len(inputs):
            self.link.broken = Gone("stopped after a failure")  # the rest of the stream is not read
        return "".join(outcomes) + "-" * (len(inputs) - len(outcomes))

    def _one_call(self, entry: str, args: list, expected: tuple, group: dict) -> tuple[str, str]:
        shown = f"{entry}({shorten(repr(args)[1:-1], 160)})"
        try:
            value = self.link.answer(*self.link.receive(self.call_deadline))
        except Slow:
            return "T", f"{shown}: no answer within the time limit"
        except Gone as exc:
            return "X", f"{shown}: {exc}"
        except Exception as exc:  # noqa: BLE001 - the candidate raised
            name = getattr(exc, "candidate_type", None) or getattr(exc, "name", type(exc).__name__)
            if expected[0] == "raise" and expected[1] == name:
                return "P", ""
            return "E", f"{shown} raised {_raised(exc)}"
        if expected[0] != "ok":
            return "F", f"{shown} returned {show(value)}, expected it to raise {expected[1]}"
        want = plain_loads(expected[1])
        try:
            ok = evalplus_match(list(args), value, want, float(group.get("atol") or 0), group.get("dataset"), entry)
        except Exception:  # noqa: BLE001 - a value the oracle cannot compare is wrong
            ok = False
        return ("P", "") if ok else ("F", f"{shown} returned {show(value)}, expected {show(want)}")

    def run_stdio(self, group: dict) -> str:
        name, outcomes = group["name"], []
        cases, cap = group["cases"], int(group["cap"])
        limits = [float(limit) * self.scale for limit in group["limits"]]
        for i, (stdin, expected) in enumerate(cases):
            if outcomes and outcomes[-1] != "P" and self.stop_early:
                break
            deadline = min(time.monotonic() + float(limits[i]) + 5.0, self.deadline)
            try:
                tag, payload = self.link.request(("run", stdin.encode(), float(limits[i]), cap), deadline)
                info = self.link.decode(payload)
                if tag != b"D":
                    raise TypeError("not a test run's result")
                stdout = info["stdout"].decode("utf-8", "replace")
            except (Slow, Gone) as exc:
                outcomes.append("T" if isinstance(exc, Slow) else "X")
                self.fail(name, i, outcomes[-1], _abort_message(exc, limits[i]))
                raise _Abort("".join(outcomes) + "-" * (len(cases) - len(outcomes))) from None
            except (IndexError, KeyError, TypeError, AttributeError):
                outcomes.append("X")
                self.fail(name, i, "X", "the test runner answered out of protocol")
                raise _Abort("".join(outcomes) + "-" * (len(cases) - len(outcomes))) from None
            outcome, message = _stdio_outcome(info, stdout, expected, limits[i], cap)
            outcomes.append(outcome)
            if outcome != "P":
                self.fail(name, i, outcome, message)
        return "".join(outcomes) + "-" * (len(cases) - len(outcomes))

    def record(self) -> dict:
        """Reference mode: the expected outputs, and the time each input took."""
        outputs: dict[str, list] = {}
        for group in self.plan["groups"]:
            rows = outputs[group["name"]] = []
            if self.link.broken is None and group["inputs"]:
                self.link.send(("batch", group["entry"], [tuple(args) for args in group["inputs"]]))
            for _args in group["inputs"]:
                if self.link.broken is not None:
                    rows.append(["skipped", None, 0.0])
                    continue
                started = time.monotonic()
                deadline = min(started + float(self.plan["record_timeout_s"]), self.deadline)
                try:
                    tag, payload = self.link.receive(deadline)
                except (Slow, Gone) as exc:
                    rows.append(["timeout" if isinstance(exc, Slow) else "crashed", None, time.monotonic() - started])
                    continue
                rows.append(_recorded(tag, payload, group, time.monotonic() - started))
        return {"status": "recorded", "outputs": outputs, "seconds": time.monotonic() - self.start}

    def report(self, loaded: dict) -> dict:
        passed = sum(t.count("P") for t in self.tests.values())
        total = sum(len(t) for t in self.tests.values())
        ok = loaded["ok"] and self.failure is None and all(self.tests.values()) and passed == total
        status = "passed" if ok else _status(self.failure)
        return {
            "status": status,
            "tests": self.tests,
            "passed": passed,
            "total": total,
            "first_failure": self.failure,
            "salvaged_lines": loaded.get("salvaged_lines", 0),
            "seconds": round(time.monotonic() - self.start, 6),
        }


class _Abort(BaseException):
    """The candidate can answer no more (timeout, crash): the outcomes of the group so far."""

    def __init__(self, outcomes: str):
        super().__init__(outcomes)
        self.outcomes = outcomes


OUTCOMES = {"P": "passed", "F": "failed", "E": "error", "T": "timeout", "X": "crashed", "L": "load-error"}
"""One letter per test in a report: passed, wrong answer, exception, time limit, process died;
'-' for a test not run. 'L' marks a program that could not be loaded (no test ran)."""


def _status(failure: dict | None) -> str:
    if failure is None:
        return "failed"
    outcome = failure["outcome"]
    return {"error": "failed", "load-error": "load-error"}.get(outcome, outcome)


def _size(group: dict) -> int:
    if group["kind"] == "calls":
        return len(group["inputs"])
    if group["kind"] == "stdio":
        return len(group["cases"])
    return 0


def _raised(exc: BaseException) -> str:
    name = getattr(exc, "candidate_type", None)
    if isinstance(exc, Raised) or name:
        return f"raised {name or exc}" if name is None else f"raised {name}: {shorten(str(exc))}"
    return f"raised {describe(exc)}"


def _abort_message(exc: BaseException, limit: float | None = None) -> str:
    if isinstance(exc, Slow):
        return "no answer within the time limit" + (f" ({float(limit):g}s)" if limit else "")
    return str(exc) or "the candidate process died"


def _stdio_outcome(info: dict, stdout: str, expected: str, limit: float, cap: int) -> tuple[str, str]:
    if info.get("timeout"):
        return "T", f"no exit within {float(limit):g}s"
    if info.get("overflow"):
        return "F", f"printed more than {cap} bytes"
    if not info.get("ok"):
        return "E", f"the program failed ({info.get('exit')})"
    if output_matches(stdout, expected):
        return "P", ""
    return "F", f"printed {shorten(repr(stdout), 120)}, expected {shorten(repr(expected), 120)}"


def _recorded(tag: bytes, payload: bytes, group: dict, seconds: float) -> list:
    """One reference output: ["ok", base64 pickle, seconds], ["raise", type name, seconds], or
    why there is none. For EvalPlus's MBPP tasks graded on "returned something", the output
    recorded is whether it was not None."""
    not_none = group.get("dataset") == "mbpp" and group["entry"] in MBPP_OUTPUT_NOT_NONE_TASKS
    if tag == b"T":
        return ["too-large", payload.decode(), seconds]
    try:
        if tag in (b"O", b"U") and not_none:
            value = True if tag == b"U" else plain_loads(payload) is not None
            return ["ok", base64.b64encode(encode_value(value)).decode(), seconds]
        if tag == b"O":
            plain_loads(payload)
            return ["ok", base64.b64encode(payload).decode(), seconds]
        if tag == b"R":
            raised = plain_loads(payload)
            return ["raise", str(raised[0]), seconds]
    except Undecodable as exc:
        return ["unencodable", f"undecodable data ({exc})", seconds]
    except (IndexError, TypeError, KeyError):
        pass
    return ["unencodable", tag.decode("ascii", "replace"), seconds]


def prepare_plan(plan: dict) -> dict:
    """Compile a plan's code once: the setup, and each script with its asserts rewritten; and
    import the modules its tests import (``imports``, read from the benchmark's code by the
    host), so that every sample's judge, forked from the server, finds them loaded."""
    plan = dict(plan)
    for name in plan.get("imports", ()):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - the tests fail on it in the judge, with the reason
            pass
    plan["setup_code"] = compile(plan.get("setup") or "", "<setup>", "exec")
    groups = []
    for group in plan["groups"]:
        if group["kind"] == "script":
            group = {**group, "compiled": rewrite_asserts(group["code"], f"<tests {group['name']}>")}
        groups.append(group)
    plan["groups"] = groups
    plan["draws"] = "random" in (plan.get("setup") or "") or any("random" in g.get("code", "") for g in groups)
    return plan


def report_bytes(report: object) -> bytes:
    """A report as JSON, whatever text the candidate put in it (a lone surrogate becomes '?')."""
    return json.dumps(report, ensure_ascii=False, default=repr).encode("utf-8", "replace")


def judge_main(ctl_fd: int, config: dict, seccomp: bytes | None) -> None:
    """The judge's loop (never returns), as the judge uid under its own seccomp filter: for
    each job, the candidate's socket arrives over the control socket, then the job; the report
    goes back the same way. Plans are kept until the server says to forget them.

    Nothing a candidate sends survives its sample here: answers are decoded by
    ``values.decode_value`` into new values of builtin types (nothing imported, called or set as
    an attribute), every sample's tests run in a namespace of their own (``Judge.bind_names``),
    and the random module is reseeded for tests that draw; the server replaces the judge when a
    sample made it grow (``JUDGE_GROWTH_BYTES``) or it failed."""
    try:
        isolate_fds({ctl_fd: 3})
        control = socket.socket(fileno=3)
        set_limit(resource.RLIMIT_CORE, 0)
        set_limit(resource.RLIMIT_AS, config.get("judge_memory_bytes"))
        become(config.get("judge_uid"))
        prctl(PR_SET_DUMPABLE, 0)
        if seccomp is not None:
            install_seccomp(seccomp)
    except BaseException:  # noqa: BLE001 - a judge that cannot be isolated must not run
        os._exit(72)
    plans: dict[str, dict] = {}
    random_module = __import__("random")
    while True:
        try:
            marker, fds, _flags, _address = socket.recv_fds(control, 1, 1)
            if not marker or len(fds) != 1:
                os._exit(0)
            job = pickle.loads(recv(3))
        except (Closed, OSError):
            os._exit(0)
        try:
            for key in job.get("forget", ()):
                plans.pop(key, None)
            if job.get("plan") is not None:
                plans[job["plan_key"]] = prepare_plan(job["plan"])
                gc.freeze()  # collections then scan a sample's objects, not every plan held
            plan = plans[job["plan_key"]]
            if plan["draws"]:  # tests that draw random inputs draw the same ones for every sample
                random_module.seed(0)
            report = Judge(Link(fds[0]), job, plan).run()
        except BaseException as exc:  # noqa: BLE001 - the report says what went wrong
            report = {"status": "error", "error": f"the judge failed: {describe(exc)}",
                      "trace": shorten(traceback.format_exc(), 2000)}
        finally:
            os.close(fds[0])
        send(3, report_bytes(report))


# --------------------------------------------------------------------------------------------
# The server: pid 1 of the sandbox. Reads jobs on fd 0, answers on fd 1.

GRACE_S = 2.0
"""Seconds past a sample's deadline the server waits for the judge before killing it."""


class ZygoteError(Exception):
    """The zygote did not answer."""


class Zygote:
    """The server's handle on one zygote: an exec'd interpreter that forks candidates. It is
    given only the sources of the values and candidate modules."""

    def __init__(self, config: dict, source: list[bytes], heavy: bool):
        self.config, self.source, self.heavy = config, source, heavy
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.preloaded: tuple[list[str], list[str]] = ([], [])

    def start(self) -> None:
        self.stop()
        ours, theirs = socket.socketpair()
        source_r, source_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                isolate_fds({source_r: 0, theirs.fileno(): 3})
                os.execv(sys.executable, [sys.executable, "-S", "-c", BOOTSTRAP, "zygote", "3",
                                          "heavy" if self.heavy else "base"])
            finally:
                os._exit(127)
        theirs.close()
        os.close(source_r)
        framed = b"".join(len(part).to_bytes(4, "big") + part for part in self.source)
        write_all(source_w, len(self.source).to_bytes(4, "big") + framed)
        os.close(source_w)
        self.pid, self.sock = pid, ours
        send(ours.fileno(), pickle.dumps(self.config))
        try:
            reply = pickle.loads(recv(ours.fileno(), time.monotonic() + ZYGOTE_TIMEOUT_S))
        except (Closed, Timeout) as exc:
            self.stop()
            raise ZygoteError(f"the zygote did not start ({type(exc).__name__})") from None
        self.preloaded = (reply[1], reply[2])

    def stop(self) -> None:
        self.pid, self.sock = _stop(self.pid, self.sock)

    def request(self, sock: socket.socket) -> None:
        """Ask for a candidate process holding ``sock`` (its pid is read with ``forked``; its
        spec is the first frame it reads on ``sock``); restarts a dead zygote once."""
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self.start()
                assert self.sock is not None
                rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, sock.fileno().to_bytes(4, sys.byteorder))
                self.sock.sendmsg([b"C"], [rights])
                return
            except (Closed, OSError, ZygoteError):
                self.stop()
                if attempt == 2:
                    raise ZygoteError("the zygote is not answering") from None

    def forked(self) -> int:
        """The pid of the candidate asked for last."""
        try:
            assert self.sock is not None
            return int.from_bytes(read_exact(self.sock.fileno(), 4, time.monotonic() + ZYGOTE_TIMEOUT_S), "big")
        except (AssertionError, Closed, Timeout, OSError):
            self.stop()
            raise ZygoteError("the zygote died") from None


class CleanupFailed(Exception):
    """What a sample left behind could not be removed: the server answers, then exits, and the
    host starts a fresh sandbox for the next sample."""


class Server:
    def __init__(self, config: dict, source: list[bytes]):
        self.config = config
        self.plans: collections.OrderedDict[str, tuple[dict, int]] = collections.OrderedDict()
        """Plans by key, with their message sizes (the judge holds them compiled)."""
        self.plan_bytes = 0
        self.zygotes = {False: Zygote(config, source, heavy=False), True: Zygote(config, source, heavy=True)}
        heavy = [re.escape(name) for name in config.get("heavy", ())]
        self.needs_heavy = re.compile(rf"\b({'|'.join(heavy)})\b") if heavy else None
        self.judge_seccomp = seccomp_program(os.uname().machine, judge=True) if config.get("seccomp") else None
        self.judge_pid: int | None = None
        self.judge_sock: socket.socket | None = None
        self.judge_plans: set[str] = set()
        self.forget: list[str] = []
        self.judge_size = 0
        """The judge's resident bytes after the last sample that brought it a plan."""
        self.pristine: dict[str, tuple] = {}
        """``scratch_state`` of each scratch mount when it was new."""
        self.samples = 0
        self.candidate_pid: int | None = None
        """The last sample's candidate process (the zygote reaps it before its next fork)."""

    def start_judge(self) -> None:
        self.stop_judge()
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            judge_main(theirs.fileno(), self.config, self.judge_seccomp)
        theirs.close()
        self.judge_pid, self.judge_sock = pid, ours
        self.judge_plans.clear()
        self.forget.clear()
        self.judge_size = 0

    def stop_judge(self) -> None:
        self.judge_pid, self.judge_sock = _stop(self.judge_pid, self.judge_sock)

    # -- jobs
    def plan_for(self, job: dict, size: int) -> dict | None:
        """The job's plan from the cache (kept in step with the judge's: what the server drops,
        the judge is told to forget). The cache holds up to ``plan_cache`` plans and
        ``plan_cache_bytes`` of them (``size``: the job message's, when it carries its plan)."""
        key = job["plan_key"]
        if job.get("plan") is not None:
            self._drop(key)
            self.plans[key] = (job["plan"], size)
            self.plan_bytes += size
        entry = self.plans.get(key)
        if entry is None:
            return None
        self.plans.move_to_end(key)
        while len(self.plans) > 1 and (len(self.plans) > int(self.config.get("plan_cache", 1024))
                                       or self.plan_bytes > int(self.config.get("plan_cache_bytes", 256 << 20))):
            self._drop(next(iter(self.plans)))
        return entry[0]

    def _drop(self, key: str) -> None:
        entry = self.plans.pop(key, None)
        if entry is not None:
            self.plan_bytes -= entry[1]
        if key in self.judge_plans:
            self.judge_plans.discard(key)
            self.forget.append(key)

    def handle(self, job: dict, size: int) -> bytes | dict:
        plan = self.plan_for(job, size)
        if plan is None:
            return {"need_plan": job["plan_key"]}
        self.samples += 1
        ours, theirs = socket.socketpair()
        budget = float(job["timeout_s"]) * float(job.get("time_scale", 1.0))
        spec = {"mode": plan["mode"], "cpu_s": budget + 1, "names": plan.get("names", [])}
        if "code" in job:  # compiled by the host (see candidate.load_program)
            spec["code"], spec["loaded"] = job["code"], job["loaded"]
        else:
            spec["program"] = job["program"]
        zygote = self.zygotes[bool(self.needs_heavy and self.needs_heavy.search(job["program"]))]
        try:
            zygote.request(theirs)
        except ZygoteError as exc:
            ours.close()
            return {"status": "error", "error": str(exc)}
        finally:
            theirs.close()
        try:
            send(ours.fileno(), pickle.dumps(spec, protocol=5))  # the candidate's first read
        except Closed:  # no candidate holds the other end (the zygote could not fork)
            ours.close()
            try:
                self.candidate_pid = zygote.forked()
            except ZygoteError as exc:
                return {"status": "error", "error": str(exc)}
            return {"status": "error", "error": "the candidate process died before it started"}
        try:
            report = self.judge(job, plan, ours)
        finally:
            ours.close()
        try:
            self.candidate_pid = zygote.forked()
        except ZygoteError as exc:
            return {"status": "error", "error": str(exc)}
        return report

    def judge(self, job: dict, plan: dict, link: socket.socket) -> bytes | dict:
        if self.judge_sock is None:
            self.start_judge()
        assert self.judge_sock is not None
        key = job["plan_key"]
        message = {k: v for k, v in job.items() if k not in ("program", "plan", "code", "loaded")}
        message["plan"] = None if key in self.judge_plans else plan
        message["forget"], self.forget = self.forget, []
        budget = float(job["timeout_s"]) * float(job.get("time_scale", 1.0))
        try:
            socket.send_fds(self.judge_sock, [b"J"], [link.fileno()])
            send(self.judge_sock.fileno(), pickle.dumps(message, protocol=5))
            self.judge_plans.add(key)
            report = recv(self.judge_sock.fileno(), time.monotonic() + budget + GRACE_S)  # passed on as is
        except Timeout:
            self.stop_judge()
            return {"status": "timeout", "error": None, "tests": {}, "first_failure": {
                "group": None, "test": None, "outcome": "timeout",
                "message": f"the sample ran past its {budget:g}s budget"}}
        except (Closed, OSError, TooLarge):
            self.stop_judge()
            return {"status": "error", "error": "the judge process died"}
        self.check_judge(grew_by_plan=message["plan"] is not None, failed=report.startswith(b'{"status": "error"'))
        return report

    def check_judge(self, grew_by_plan: bool, failed: bool) -> None:
        """Replace the judge after a sample that made it fail, or grow by more than
        ``JUDGE_GROWTH_BYTES`` without bringing a plan: no sample's leftovers (memory it made the
        judge hold) reach the next one."""
        size = resident_bytes(self.judge_pid)
        if failed or size is None:
            self.stop_judge()
        elif grew_by_plan or not self.judge_size:
            self.judge_size = size
        elif size > self.judge_size + JUDGE_GROWTH_BYTES:
            self.stop_judge()

    def cleanup(self) -> None:
        """Kill every process of the sample, wait until they have exited, and give the next
        sample a fresh scratch space. CleanupFailed when that cannot be done.

        The candidate is killed first and waited for: when no other process is left then (the
        usual case), none can appear, as only a process makes one. Otherwise, where the sandbox
        runs its candidates as a uid of their own, one ``kill(-1)`` made as that uid reaches
        every process of the sample at once (a fork cannot escape it), so no round of killing
        can be outrun; elsewhere each process found below the server is killed, round after
        round. Either way the server then waits, up to ``KILL_WAIT_S``, until nothing but the
        server, the judge, the zygotes and zombies is left."""
        candidate, self.candidate_pid = self.candidate_pid, None
        uid = self.config.get("candidate_uid")
        keep = {os.getpid(), candidate, self.judge_pid, *(z.pid for z in self.zygotes.values())}
        if candidate is not None and _kill_and_wait(candidate):
            self._reap()
            if _pids() <= keep:  # the usual case: the candidate, now dead, made no process
                self.reset_scratch()
                return
        if uid is not None:
            kill_uid(uid)
        self._reap()
        if not _pids() <= keep:
            self._wait_for_strays(uid)
        self.reset_scratch()

    def _wait_for_strays(self, uid: int | None) -> None:
        deadline = time.monotonic() + KILL_WAIT_S
        pause = 0.0002
        while True:
            keep = {os.getpid(), self.judge_pid, *(z.pid for z in self.zygotes.values())}
            table = proc_table()
            strays = [p for p in descendants(os.getpid(), table) if p not in keep and table[p][1] != "Z"]
            self._reap()
            if not strays:
                return
            if time.monotonic() > deadline:
                raise CleanupFailed(f"{len(strays)} of the sample's processes did not exit within {KILL_WAIT_S:g}s")
            if uid is not None:
                kill_uid(uid)
            else:
                for pid in strays:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def reset_scratch(self) -> None:
        """A fresh scratch space for the next sample: new tmpfs mounts where the server may mount
        (nothing a sample leaves, however deep, sticky or many, costs the next one anything), else
        a wipe that raises CleanupFailed if anything is left; then System V IPC objects."""
        mounts = self.config.get("scratch_mounts")
        workdir = self.config["workdir"]
        try:
            if mounts:
                if self.pristine and all(scratch_state(path, workdir) == self.pristine.get(path) for path, *_ in mounts):
                    return  # nothing was written, renamed, chmodded or tagged: the same as new
                for path, size, inodes, mode in mounts:
                    mount_tmpfs(path, size, inodes, mode)
            else:
                for path in self.config.get("wipe", ()):
                    wipe(path)
            make_workdir(workdir, self.config.get("candidate_uid"))
            if mounts:
                self.pristine = {path: scratch_state(path, workdir) for path, *_ in mounts}
        except Exception as exc:  # noqa: BLE001 - whatever failed, the next sample must not see it
            raise CleanupFailed(f"the scratch space could not be reset ({describe(exc)})") from None
        leftovers = sysv_leftovers()
        if leftovers:
            self._remove_sysv(leftovers)

    def _reap(self) -> None:
        for pid, _status in reap():
            for zygote in self.zygotes.values():
                if pid == zygote.pid:
                    zygote.pid = None
                    zygote.stop()
            if pid == self.judge_pid:
                self.judge_pid = None
                self.stop_judge()

    def _remove_sysv(self, leftovers: dict[str, list[int]]) -> None:
        uid = self.config.get("candidate_uid")
        if uid is None:
            remove_sysv(leftovers)
            return
        pid = os.fork()
        if pid == 0:
            try:
                become(uid)
                remove_sysv(leftovers)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

    def grade(self, job: dict, size: int) -> bytes | dict:
        """The sample's report, its processes gone and its scratch space reset. A sample that
        ran out of time is graded again, once, with every limit multiplied by ``retry_scale``: a
        correct sample that was slow only because the machine was busy then passes."""
        reply = self.attempt(job, size)
        if job.get("record") or not timed_out(reply):
            return reply
        scale = retry_scale()
        again = self.attempt({**job, "plan": None, "time_scale": scale}, 0)
        if isinstance(again, bytes):
            try:
                again = json.loads(again)
            except ValueError:  # not the judge's JSON: the second try's report as it is
                return again
        if isinstance(again, dict) and "need_plan" not in again:
            again["retried"] = round(scale, 2)
            return again
        return reply

    def attempt(self, job: dict, size: int) -> bytes | dict:
        """One grading of the sample, then its cleanup (CleanupFailed passes through)."""
        try:
            reply = self.handle(job, size)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not end the server
            reply = {"status": "error", "error": f"sandbox server: {describe(exc)}"}
        self.cleanup()  # before the answer: when the host has a verdict, the sample is gone
        return reply

    def serve(self) -> None:
        while True:
            try:
                frame = recv(0)
                message = pickle.loads(frame)
            except Closed:
                return
            op = message.get("op")
            if op == "exit":
                return
            if op == "ping":
                send_json(1, {"pong": True, "samples": self.samples, "judge": self.judge_pid,
                              "zygotes": [z.pid for z in self.zygotes.values() if z.pid is not None]})
                continue
            try:
                reply = self.grade(message, len(frame))
            except CleanupFailed as exc:
                send_json(1, cleanup_failure(str(exc)))
                return  # the host starts a fresh sandbox
            if isinstance(reply, bytes):
                send(1, reply)
            else:
                send_json(1, reply)


def timed_out(reply: bytes | dict) -> bool:
    """Whether a report gives a time limit as the sample's (first) failure."""
    if isinstance(reply, bytes):
        if b'"timeout"' not in reply:
            return False
        try:
            reply = json.loads(reply)
        except ValueError:
            return False
    return isinstance(reply, dict) and (reply.get("status") == "timeout"
                                        or (reply.get("first_failure") or {}).get("outcome") == "timeout")


RETRY_MIN_SCALE = 2.0
"""The smallest factor on a timed-out sample's limits when it is graded again."""

RETRY_MAX_SCALE = 8.0
"""The largest: a sample that needs more than this is slow, not unlucky (the host allows for
it when it waits for an answer)."""

BUSY_PROBE_S = 0.02
"""Seconds of spinning that measure which share of its CPU the server gets right now."""


def cpu_share(seconds: float = BUSY_PROBE_S) -> float:
    """The share of a CPU this process gets (1.0 on an idle CPU, 0.25 with three others
    spinning on it): thread CPU time over wall time while spinning."""
    wall, cpu = time.monotonic(), time.thread_time()
    while time.monotonic() - wall < seconds:
        pass
    return max(time.thread_time() - cpu, 1e-6) / (time.monotonic() - wall)


def retry_scale() -> float:
    """The factor for a timed-out sample's second try: the slowdown the machine shows now (a
    busy machine's), and at least ``RETRY_MIN_SCALE``."""
    return min(RETRY_MAX_SCALE, max(RETRY_MIN_SCALE, 1.5 / cpu_share()))


def cleanup_failure(message: str) -> dict:
    """The report of a sample that left the sandbox unfit for the next one: failed, whatever its
    tests said, and the sandbox is replaced."""
    return {"status": "failed", "tests": {}, "passed": 0, "total": 0, "error": None, "restart": True,
            "first_failure": {"group": None, "test": None, "outcome": "crashed",
                              "message": f"the sample left the sandbox unusable: {message}"}}


JUDGE_GROWTH_BYTES = 64 << 20
"""Growth of the judge's resident memory in one sample (that brought no plan) past which the
judge is replaced: a sample's answers may make it hold memory it does not give back."""


def resident_bytes(pid: int | None) -> int | None:
    """Resident memory of process ``pid`` (from /proc), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


KILL_WAIT_S = 30.0
"""Seconds the server waits for a sample's killed processes to exit (freeing gigabytes takes
a while) before it gives up on the sandbox."""


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` at once: ``kill(-1)`` made with that real and effective
    uid reaches exactly the processes of that uid (but pid 1, the server), and a process forking
    at that moment cannot leave a child unsignalled. The server keeps root as its saved uid and
    takes it back, and the parent-death signal (bubblewrap's ``--die-with-parent``) that a change
    of uid clears."""
    os.setresuid(uid, uid, 0)
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:  # nothing of the sample is left
        pass
    finally:
        os.setresuid(0, 0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


CANDIDATE_EXIT_S = 2.0
"""Seconds the server waits for a killed candidate to exit before looking for it in /proc."""


def _kill_and_wait(pid: int) -> bool:
    """SIGKILL process ``pid`` (a candidate: not the server's child, so not reaped here) and
    wait until it has exited. False if it could not be watched or did not exit in time."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already (reaped), or pidfd unsupported: the slow path looks
        return False
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(int(CANDIDATE_EXIT_S * 1000)))
    except OSError:
        return False
    finally:
        os.close(fd)


def _pids() -> set[int]:
    """Every process /proc lists (in a PID namespace: the sandbox's own)."""
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _stop(pid: int | None, sock: socket.socket | None) -> tuple[None, None]:
    if sock is not None:
        sock.close()
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass
    return None, None


def server_main(candidate_sources: list[bytes]) -> None:
    config = pickle.loads(recv(0))
    prctl(PR_SET_DUMPABLE, 0)
    if config.get("cpu") is not None:
        try:
            os.sched_setaffinity(0, {int(config["cpu"])})  # inherited by the zygotes, judge and candidates
        except OSError:  # a CPU this namespace may not use (a cpuset): run anywhere
            pass
    if config.get("subreaper"):
        prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans come back to the server (no PID namespace)
    os.chdir("/")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for name in config.get("judge_preload", ()):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - the judge imports it when a test needs it, or fails then
            pass
    gc.collect()
    gc.freeze()
    server = Server(config, candidate_sources)
    try:
        server.zygotes[False].start()
        server.start_judge()
        server.reset_scratch()
    except (ZygoteError, CleanupFailed) as exc:
        send_json(1, {"ready": False, "error": str(exc)})
        return
    send_json(1, {
        "ready": True,
        "python": sys.version.split()[0],
        "hexversion": sys.hexversion,
        "implementation": sys.implementation.name,
        "uid": os.getuid(),
        "pid": os.getpid(),
        "preloaded": server.zygotes[False].preloaded[0],
        "preload_failed": server.zygotes[False].preloaded[1],
        "seccomp": bool(config.get("seccomp")) and seccomp_program(os.uname().machine) is not None,
    })
    server.serve()


if __name__ == "__main__" and sys.argv[1:2] == ["server"]:
    server_main(globals()["__boundary_sources__"][:2])  # the values and candidate modules
