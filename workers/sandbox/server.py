"""The fork server that runs inside the sandbox. Standard library only.

It is never imported inside the sandbox: the host sends the text of ``workers.sandbox.candidate``
and of this module to a bare interpreter started as ``python -S -c BOOTSTRAP server`` (see
``candidate.BOOTSTRAP``), which runs both, in order, as ``__main__``; the zygote runs only the
first. The host's tests import both for their pure parts (value checks, the assert rewriter, the
seccomp filter).

Processes, all inside the sandbox's own PID namespace, where the server is init (pid 1: signals
sent from inside the namespace cannot kill it):

    server ─┬─ judge      one per sample: holds the tests and expected values, runs the tests,
            │             compares, and reports to the server over a pipe only it holds
            └─ zygote ── candidate     one per sample: runs the sample's code; never sees a test
                            └─ run     stdio problems: one per test case

The zygote is a fresh interpreter (exec'd, not forked from the server) that imports the heavy
modules once (numpy...) and never receives tests or expected values: a candidate forked from it
finds nothing about the tests in its memory. The judge calls the candidate's functions over a
socket pair: arguments go out pickled, results come back pickled and are decoded with an
unpickler that builds plain values only (numbers, strings, containers: no class of the
candidate's, so no ``__eq__`` of its own), then compared by the judge. The candidate cannot
write to the judge's report channel, see the tests, or stop them early: exiting, ``atexit``,
``sys.settrace``, printing, or killing its parent all leave the judge with missing answers,
which fail.

Where the sandbox is started by root (the server runs as root inside, with only the
capabilities it needs), the candidate runs as an unprivileged uid with an RLIMIT_NPROC (which
root ignores), and the judge as another uid, so the candidate can neither signal nor trace the
judge, the zygote or the server. Everywhere, the candidate also gets rlimits (CPU, address space,
file size, open files, no core files), a seccomp filter (no ptrace, no new namespaces, no
keyrings, bpf, mounts or io_uring), a fresh scratch directory, and no open descriptor but its
socket; after each sample the server kills every process but itself and the zygote, and wipes
the scratch space and System V IPC objects, so nothing outlives or leaks into the next sample.
"""

from __future__ import annotations

import ast
import base64
import builtins
import collections
import datetime
import decimal
import gc
import io
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

if __name__ != "__main__":  # on the host; in the sandbox the candidate module ran first, in this namespace
    from workers.sandbox.candidate import (
        BOOTSTRAP, PR_SET_DUMPABLE, REPLY_TAGS, Closed, Reader, Timeout, TooLarge, become, describe, isolate_fds,
        prctl, read_exact, reap, recv, seccomp_program, send, set_limit, shorten, write_all,
    )

MAX_REPLY = 128 << 20
"""Largest answer the judge decodes from a candidate (bytes): a bigger one fails its test (and a
reference solution's is dropped, with a note)."""

RECORD_FN = "__boundary_assert__"
"""Name the rewritten asserts call (see ``rewrite_asserts``)."""

ZYGOTE_TIMEOUT_S = 30.0
"""Seconds the zygote may take to start (it imports numpy) or to answer a request."""

KILL_ROUNDS = 400
"""Rounds of SIGKILL over leftover processes before the server gives up (and exits, so the host
starts a fresh sandbox)."""


def send_json(fd: int, value: object) -> None:
    send(fd, json.dumps(value, ensure_ascii=False).encode())


# --------------------------------------------------------------------------------------------
# Plain values: what may cross from a candidate to the judge, and how they are compared.

_SAFE_GLOBALS = frozenset(
    [("builtins", n) for n in ("complex", "set", "frozenset", "bytearray", "range", "int", "float", "str",
                                "bytes", "list", "dict", "tuple", "bool")]
    + [("collections", n) for n in ("OrderedDict", "defaultdict", "Counter", "deque")]
    + [("decimal", "Decimal")]
    + [("datetime", n) for n in ("date", "datetime", "time", "timedelta", "timezone")]
)
"""The only globals a candidate's pickle may name: types whose instances are plain data."""

_PLAIN_TYPES = frozenset(
    {type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, range,
     collections.OrderedDict, collections.defaultdict, collections.Counter, collections.deque,
     decimal.Decimal, datetime.date, datetime.datetime, datetime.time, datetime.timedelta, datetime.timezone}
)
_FACTORIES = frozenset({None, int, float, str, list, dict, set, tuple, bool, collections.Counter,
                        collections.OrderedDict, collections.deque})
_MAPPINGS = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)
_SEQUENCES = (list, tuple, collections.deque)


class NotPlain(Exception):
    """A value that is not plain data (a class of the candidate's, a function...)."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise NotPlain(f"a {module}.{name} object")

    def persistent_load(self, pid):  # noqa: ANN001, ANN201
        raise NotPlain("a persistent reference")


def check_plain(value: object) -> None:
    """Raise NotPlain unless ``value`` is built of ``_PLAIN_TYPES`` only, with no attributes
    smuggled onto an instance and no default factory but a plain type."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind not in _PLAIN_TYPES:
            raise NotPlain(f"a {kind.__module__}.{kind.__qualname__} object")
        if kind in (list, tuple, set, frozenset, collections.deque) or issubclass(kind, dict):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if getattr(item, "__dict__", None):
                raise NotPlain(f"a {kind.__name__} with attributes")
            if kind is collections.defaultdict and item.default_factory not in _FACTORIES:
                raise NotPlain("a defaultdict with a default factory that is not a plain type")
            if issubclass(kind, dict):
                stack.extend(dict.keys(item))
                stack.extend(dict.values(item))
            else:
                stack.extend(item)


def plain_loads(data: bytes) -> object:
    """Decode a pickle from an untrusted process into plain values only (or raise NotPlain)."""
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except NotPlain:
        raise
    except RecursionError:
        raise NotPlain("a value nested too deeply") from None
    except Exception as exc:  # a malformed pickle: any error the unpickler raises
        raise NotPlain(f"undecodable data ({type(exc).__name__})") from None
    check_plain(value)
    return value


def same(out: object, exp: object) -> bool:
    """Equality that also demands the expected type: ``True`` is not ``1``, ``(1, 2)`` is not
    ``[1, 2]``, a Counter is not a dict. The one allowance is Python's numeric tower: an int
    where a float is expected, compared exactly. Both sides are plain values (no foreign
    ``__eq__``)."""
    stack = [(out, exp)]
    while stack:
        a, b = stack.pop()
        kind = type(b)
        if kind is float:
            if type(a) not in (int, float) or not a == b:
                return False
            continue
        if type(a) is not kind:
            return False
        if kind in _SEQUENCES:
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b))
        elif kind in _MAPPINGS:
            if dict.__len__(a) != dict.__len__(b):
                return False
            if kind is collections.OrderedDict and list(dict.keys(a)) != list(dict.keys(b)):
                return False
            for key, value in dict.items(b):
                if not dict.__contains__(a, key):
                    return False
                stack.append((dict.__getitem__(a, key), value))
        elif not a == b:
            return False
    return True


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
    """EvalPlus's output check (its ``exact_match`` made type-strict with ``same``)."""
    exact = same(out, exp)
    if dataset == "mbpp":
        if entry == "are_equivalent":
            exact = True
        elif entry == "sum_div":
            exact = exact or same(out, 0)
        elif entry == "surface_Area":
            exact = exact or (_number(out) and abs(out - _surface_area(*inp)) <= atol)
        elif entry == "digit_distance_nums":
            exact = exact or same(out, _digit_distance_nums(*inp))
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
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for ident in leftovers.get("shm", []):
        libc.shmctl(ident, _IPC_RMID, None)
    for ident in leftovers.get("msg", []):
        libc.msgctl(ident, _IPC_RMID, None)
    for ident in leftovers.get("sem", []):
        libc.semctl(ident, 0, _IPC_RMID)


def wipe(path: str, keep: str | None = None, only: str | None = None) -> None:
    """Remove what is inside ``path`` (not ``path`` itself): every entry but ``keep``, or only
    the entry ``only``. (The working directory is emptied by the next ``prepare_workdir``.)"""
    try:
        entries = [only] if only is not None else os.listdir(path)
    except OSError:
        return
    for name in entries:
        if name == keep:
            continue
        full = os.path.join(path, name)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, onerror=_force_remove)
            else:
                os.unlink(full)
        except OSError:
            pass


def _force_remove(function, path, _excinfo) -> None:  # noqa: ANN001
    try:
        os.chmod(os.path.dirname(path), 0o700)
        os.chmod(path, 0o700)
        function(path)
    except OSError:
        pass


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
            except NotPlain as exc:
                return Opaque(str(exc), None, str(exc))
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
        except NotPlain as exc:
            self.broken = Gone(f"answered with {exc}")
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
        self.deadline = self.start + float(job["timeout_s"])
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
        deadline = min(self.start + float(self.plan["load_timeout_s"]), self.deadline)
        try:
            tag, payload = self.link.receive(deadline)
            info = self.link.decode(payload)
            if tag != b"L" or not (isinstance(info, dict) and isinstance(info.get("ok"), bool)):
                raise Gone("answered out of protocol")
        except Slow:
            info = {"ok": False, "kind": "timeout", "error": "loading the program took too long"}
        except Gone:
            info = {"ok": False, "kind": "crashed", "error": "the program ended the process while loading"}
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
            elif entry[0] == "module" and len(entry) == 2 and isinstance(entry[1], str):
                try:
                    self.namespace[name] = __import__(entry[1], fromlist=["_"])
                except Exception:  # noqa: BLE001 - a module the judge cannot import stays unbound
                    pass
            elif entry[0] == "value" and len(entry) == 2 and isinstance(entry[1], bytes):
                try:
                    self.namespace[name] = plain_loads(entry[1])
                except NotPlain:
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
        self.call_deadline = min(time.monotonic() + float(group["timeout_s"]), self.deadline)

        def record(text: str, thunk) -> None:  # noqa: ANN001
            try:
                outcome, message = ("P", "") if thunk() else ("F", f"{text} failed")
            except (Slow, Gone):
                raise
            except NotPlain as exc:
                outcome, message = "F", f"{text}: the function returned {exc}"
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
            self.fail(name, len(outcomes) - 1, outcomes[-1], _abort_message(exc, group["timeout_s"]))
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
            self.call_deadline = min(time.monotonic() + float(limits[i]), self.deadline)
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
        cases, limits, cap = group["cases"], group["limits"], int(group["cap"])
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
    if tag in (b"O", b"U") and not_none:
        value = True if tag == b"U" else plain_loads(payload) is not None
        return ["ok", base64.b64encode(pickle.dumps(value, protocol=5)).decode(), seconds]
    if tag == b"O":
        try:
            plain_loads(payload)
        except NotPlain as exc:
            return ["unencodable", str(exc), seconds]
        return ["ok", base64.b64encode(payload).decode(), seconds]
    if tag == b"R":
        try:
            raised = plain_loads(payload)
            return ["raise", str(raised[0]), seconds]
        except (NotPlain, IndexError, TypeError):
            pass
    return ["unencodable", tag.decode("ascii", "replace"), seconds]


def prepare_plan(plan: dict) -> dict:
    """Compile a plan's code once: the setup, and each script with its asserts rewritten."""
    plan = dict(plan)
    plan["setup_code"] = compile(plan.get("setup") or "", "<setup>", "exec")
    groups = []
    for group in plan["groups"]:
        if group["kind"] == "script":
            group = {**group, "compiled": rewrite_asserts(group["code"], f"<tests {group['name']}>")}
        groups.append(group)
    plan["groups"] = groups
    plan["draws"] = "random" in (plan.get("setup") or "") or any("random" in g.get("code", "") for g in groups)
    return plan


def judge_main(ctl_fd: int, config: dict) -> None:
    """The judge's loop (never returns): for each job, the candidate's socket arrives over the
    control socket, then the job; the report goes back the same way. Plans are kept until the
    server says to forget them."""
    try:
        isolate_fds({ctl_fd: 3})
        control = socket.socket(fileno=3)
        set_limit(resource.RLIMIT_CORE, 0)
        set_limit(resource.RLIMIT_AS, config.get("judge_memory_bytes"))
        become(config.get("judge_uid"))
        prctl(PR_SET_DUMPABLE, 0)
    except BaseException:  # noqa: BLE001
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
        send_json(3, report)


# --------------------------------------------------------------------------------------------
# The server: pid 1 of the sandbox. Reads jobs on fd 0, answers on fd 1.

GRACE_S = 2.0
"""Seconds past a sample's deadline the server waits for the judge before killing it."""


class ZygoteError(Exception):
    """The zygote did not answer."""


class Zygote:
    """The server's handle on one zygote: an exec'd interpreter that forks candidates. It is
    given only the candidate module's source."""

    def __init__(self, config: dict, source: bytes, heavy: bool):
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
        write_all(source_w, (1).to_bytes(4, "big") + len(self.source).to_bytes(4, "big") + self.source)
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


class Server:
    def __init__(self, config: dict, source: bytes):
        self.config = config
        self.plans: collections.OrderedDict[str, tuple[dict, int]] = collections.OrderedDict()
        self.plan_bytes = 0
        self.zygotes = {False: Zygote(config, source, heavy=False), True: Zygote(config, source, heavy=True)}
        heavy = [re.escape(name) for name in config.get("heavy", ())]
        self.needs_heavy = re.compile(rf"\b({'|'.join(heavy)})\b") if heavy else None
        self.judge_pid: int | None = None
        self.judge_sock: socket.socket | None = None
        self.judge_plans: set[str] = set()
        self.forget: list[str] = []
        self.samples = 0
        self.candidate_pid: int | None = None
        """The last sample's candidate process (the zygote reaps it before its next fork)."""

    def start_judge(self) -> None:
        self.stop_judge()
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            judge_main(theirs.fileno(), self.config)
        theirs.close()
        self.judge_pid, self.judge_sock = pid, ours
        self.judge_plans.clear()
        self.forget.clear()

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
        self.prepare_workdir()
        ours, theirs = socket.socketpair()
        spec = {"mode": plan["mode"], "cpu_s": float(job["timeout_s"]) + 1, "names": plan.get("names", [])}
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

    def prepare_workdir(self) -> None:
        """The sample's working directory: empty, private to the candidate's uid."""
        workdir, uid = self.config["workdir"], self.config.get("candidate_uid")
        try:
            info = os.lstat(workdir)
        except FileNotFoundError:
            info = None
        fresh = (info is not None and info.st_mode == 0o40700 and info.st_uid == (uid if uid is not None else os.getuid())
                 and not os.listdir(workdir))
        if fresh:
            return
        if info is not None:
            wipe(os.path.dirname(workdir), only=os.path.basename(workdir))
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)

    def judge(self, job: dict, plan: dict, link: socket.socket) -> bytes | dict:
        if self.judge_sock is None:
            self.start_judge()
        assert self.judge_sock is not None
        key = job["plan_key"]
        message = {k: v for k, v in job.items() if k not in ("program", "plan", "code", "loaded")}
        message["plan"] = None if key in self.judge_plans else plan
        message["forget"], self.forget = self.forget, []
        deadline = time.monotonic() + float(job["timeout_s"]) + GRACE_S
        try:
            socket.send_fds(self.judge_sock, [b"J"], [link.fileno()])
            send(self.judge_sock.fileno(), pickle.dumps(message, protocol=5))
            self.judge_plans.add(key)
            return recv(self.judge_sock.fileno(), deadline)  # the judge's JSON, passed on as is
        except Timeout:
            self.stop_judge()
            report = {"status": "timeout", "error": None, "tests": {}, "first_failure": {
                "group": None, "test": None, "outcome": "timeout",
                "message": f"the sample ran past its {float(job['timeout_s']):g}s budget"}}
        except (Closed, OSError, TooLarge):
            self.stop_judge()
            report = {"status": "error", "error": "the judge process died"}
        return report

    def cleanup(self) -> None:
        """Kill every process but the server, the zygotes and the judge, reap them, and wipe
        the scratch space and System V IPC objects.

        The candidate is killed first and waited for: its descendants are then the server's
        (pid 1 of the namespace, or a subreaper), so in the usual case the only processes left
        are the server, the judge, the zygotes and the candidate's zombie, which one listing of
        /proc shows without reading each process's state. Anything else takes the slow path:
        every descendant found in /proc is killed, round after round, until none is left."""
        candidate, self.candidate_pid = self.candidate_pid, None
        if candidate is not None and _kill_and_wait(candidate):
            keep = {os.getpid(), self.judge_pid, candidate, *(z.pid for z in self.zygotes.values())}
            self._reap()
            if _pids() <= keep:
                self._wipe()
                return
        for _round in range(KILL_ROUNDS):
            keep = {os.getpid(), self.judge_pid, *(z.pid for z in self.zygotes.values())}
            table = proc_table()
            strays = [p for p in descendants(os.getpid(), table) if p not in keep and table[p][1] != "Z"]
            self._reap()
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.0002)
        else:
            raise SystemExit("cannot kill the sample's processes")
        self._wipe()

    def _wipe(self) -> None:
        parent, workdir = os.path.split(self.config["workdir"])
        for path in self.config.get("wipe", ()):
            wipe(path, keep=workdir if path == parent else None)
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
                reply = self.handle(message, len(frame))
            except Exception as exc:  # noqa: BLE001 - one job's failure must not end the server
                reply = {"status": "error", "error": f"sandbox server: {describe(exc)}"}
            self.cleanup()  # before the answer: when the host has a verdict, the sample is gone
            if isinstance(reply, bytes):
                send(1, reply)
            else:
                send_json(1, reply)


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


def server_main(candidate_source: bytes) -> None:
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
    server = Server(config, candidate_source)
    try:
        server.zygotes[False].start()
        server.start_judge()
    except ZygoteError as exc:
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
    server_main(globals()["__boundary_sources__"][0])
