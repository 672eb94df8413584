"""The candidate's side of the sandbox: the zygote and the processes it forks. Standard
library only, and small on purpose: the zygote runs only this module (the server runs it and
``boundary.workers.sandbox.server``), and every page a forked candidate touches is a copy-on-write fault,
so the less the zygote holds the less each sample costs.

A candidate sets itself up (its own session, no descriptor but its socket to the judge, a CPU
limit, the candidate uid), runs the sample's program, and answers the judge: which of the names
the tests use the program defines, and one call at a time. It never sees a test or an expected
value. For stdin/stdout problems it forks one child per test case instead, and reports what the
child printed.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import gc
import io
import marshal
import math
import os
import pickle
import re
import resource
import select
import signal
import socket
import struct
import sys
import time

if "encode_value" not in globals():  # on the host; in the sandbox the values module ran first, in this namespace
    from boundary.workers.sandbox.values import encode_value

BOOTSTRAP = (
    "import os,sys\n"
    "def _read(n):\n"
    "    b=b''\n"
    "    while len(b)<n:\n"
    "        c=os.read(0,n-len(b))\n"
    "        if not c: raise SystemExit(3)\n"
    "        b+=c\n"
    "    return b\n"
    "def _frame(): return _read(int.from_bytes(_read(4),'big'))\n"
    "__boundary_sources__=[_frame() for _ in range(int.from_bytes(_read(4),'big'))]\n"
    "for _source in __boundary_sources__: exec(compile(_source,'<boundary-sandbox>','exec'))\n"
)
"""What ``python -S -c`` runs: read a count, then that many sources (each a 4-byte length and
the text) from fd 0, and run them in order in one namespace, keeping their text (the server
starts the zygote with the first two: ``boundary.workers.sandbox.values`` and this module). The host writes the sources, then waits for the server's
first message before writing anything else, so nothing meant for the server is consumed here."""

MAX_FRAME = 256 << 20
"""Largest message accepted from a trusted peer (bytes)."""

MESSAGE_CHARS = 300
"""Longest text kept from an exception message or a value's repr in a report."""

SALVAGE_LINES = 60
"""Trailing lines dropped, one at a time, from a program that does not parse (a completion cut
by the token limit), looking for a prefix that does."""

# --------------------------------------------------------------------------------------------
# Framing: a 4-byte big-endian length, then the payload; every read can have a deadline.


class Closed(Exception):
    """The other end closed the channel (or died)."""


class Timeout(Exception):
    """Nothing complete arrived before the deadline."""


class TooLarge(Exception):
    """A message above the size limit."""


_LEN = struct.Struct(">I")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Closed(str(exc)) from None


def send(fd: int, payload: bytes) -> None:
    write_all(fd, _LEN.pack(len(payload)) + payload)


def _wait_readable(fd: int, deadline: float | None) -> None:
    if deadline is None:
        return
    wait = deadline - time.monotonic()
    if wait <= 0:
        raise Timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    if not poller.poll(math.ceil(wait * 1000)):
        raise Timeout


def read_exact(fd: int, size: int, deadline: float | None = None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        _wait_readable(fd, deadline)
        try:
            chunk = os.read(fd, min(remaining, 1 << 20))
        except InterruptedError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("end of stream")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv(fd: int, deadline: float | None = None, limit: int = MAX_FRAME) -> bytes:
    (size,) = _LEN.unpack(read_exact(fd, 4, deadline))
    if size > limit:
        raise TooLarge(f"message of {size} bytes (limit {limit})")
    return read_exact(fd, size, deadline)


class Reader:
    """Frames from one descriptor, read in large chunks: one poll and one read per message in
    the usual case. Only for a channel carrying strict request/answer traffic (it may read
    ahead), and never for one that also carries descriptors."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def frame(self, deadline: float | None = None, limit: int = MAX_FRAME) -> bytes:
        """The next message. One over ``limit`` is read and thrown away (within the deadline),
        then TooLarge is raised: the channel stays in step."""
        while True:
            if len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[:4], "big")
                if size > limit:
                    self._discard(4 + size, deadline)
                    raise TooLarge(f"a message of {size} bytes (limit {limit})")
                if len(self.buffer) >= 4 + size:
                    data = bytes(self.buffer[4:4 + size])
                    del self.buffer[:4 + size]
                    return data
                want = 4 + size - len(self.buffer)
            else:
                want = 4 - len(self.buffer)
            self._fill(deadline, max(want, 1 << 16))

    def _discard(self, size: int, deadline: float | None) -> None:
        while len(self.buffer) < size:
            size -= len(self.buffer)
            self.buffer.clear()
            self._fill(deadline, min(size, 1 << 24))
        del self.buffer[:size]

    def _fill(self, deadline: float | None, size: int) -> None:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not self.poller.poll(math.ceil(wait * 1000)):
                raise Timeout
        try:
            chunk = os.read(self.fd, min(size, 1 << 24))
        except InterruptedError:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("end of stream")
        self.buffer += chunk


# --------------------------------------------------------------------------------------------
# Return values and messages.


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    message = shorten(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Operating-system helpers.

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def prctl(option: int, arg: int = 0) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


# seccomp: syscalls a candidate may not make (x86_64, aarch64 numbers). inotify and fanotify
# would report the host's activity on the files bound into the sandbox; sched_setaffinity would
# undo the CPU the sandbox is pinned to.
_BLOCKED_SYSCALLS = {
    "x86_64": dict(
        ptrace=101, process_vm_readv=310, process_vm_writev=311, keyctl=250, add_key=248, request_key=249, bpf=321,
        perf_event_open=298, userfaultfd=323, unshare=272, setns=308, mount=165, umount2=166, pivot_root=155,
        chroot=161, open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
        mount_setattr=442, kexec_load=246, kexec_file_load=320, init_module=175, finit_module=313,
        delete_module=176, reboot=169, swapon=167, swapoff=168, acct=163, quotactl=179, syslog=103,
        io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_by_handle_at=304,
        name_to_handle_at=303, personality=135, inotify_init=253, inotify_init1=294, fanotify_init=300,
        sched_setaffinity=203,
    ),
    "aarch64": dict(
        ptrace=117, process_vm_readv=270, process_vm_writev=271, keyctl=219, add_key=217, request_key=218, bpf=280,
        perf_event_open=241, userfaultfd=282, unshare=97, setns=268, mount=40, umount2=39, pivot_root=41,
        chroot=51, open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
        mount_setattr=442, kexec_load=104, kexec_file_load=294, init_module=105, finit_module=273,
        delete_module=106, reboot=142, swapon=224, swapoff=225, acct=89, quotactl=60, syslog=116,
        io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_by_handle_at=265,
        name_to_handle_at=264, personality=92, inotify_init1=26, fanotify_init=262, sched_setaffinity=122,
    ),
}
_JUDGE_BLOCKED_SYSCALLS = {
    "x86_64": dict(fork=57, vfork=58, execve=59, execveat=322, socket=41, socketpair=53, connect=42, kill=62,
                   tkill=200, tgkill=234),
    "aarch64": dict(execve=221, execveat=281, socket=198, socketpair=199, connect=203, kill=129, tkill=130,
                    tgkill=131),
}
"""What the judge may not do on top of a candidate's list: it runs the benchmark's tests on
values it decoded itself, so it never needs a new process, program, socket or signal. Its clone
is refused whatever the flags (see ``seccomp_program``)."""
_ARCH = {"x86_64": (0xC000003E, 56, 435), "aarch64": (0xC00000B7, 220, 435)}
"""Audit arch, clone and clone3 numbers."""
_CLONE_NAMESPACES = 0x7E020080
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME."""


def seccomp_program(machine: str, judge: bool = False) -> bytes | None:
    """A classic-BPF seccomp filter: EPERM for ``_BLOCKED_SYSCALLS`` and for clone with a
    namespace flag, ENOSYS for clone3 (libc falls back to clone), EPERM for every other ABI (i386,
    x32). The judge's (``judge``) also refuses ``_JUDGE_BLOCKED_SYSCALLS`` and every clone. None
    on an architecture not listed here."""
    if machine not in _BLOCKED_SYSCALLS:
        return None
    arch, clone_nr, clone3_nr = _ARCH[machine]
    numbers = set(_BLOCKED_SYSCALLS[machine].values())
    if judge:
        numbers |= {*_JUDGE_BLOCKED_SYSCALLS[machine].values(), clone_nr}
    blocked = sorted(numbers)
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    prog: list[tuple[int, int, int, int]] = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0)]
    if machine == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    for nr in blocked:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, clone3_nr), (ret, 0, 0, enosys)]
    prog += [(jeq, 0, 3, clone_nr), (ld, 0, 0, 16), (jset, 0, 1, _CLONE_NAMESPACES), (ret, 0, 0, eperm)]
    prog += [(ret, 0, 0, allow)]
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


def install_seccomp(program: bytes | None = None) -> bool:
    """Install a seccomp filter (``seccomp_program``'s for a candidate unless another is given)
    for this process and its descendants; False if unsupported."""
    program = program if program is not None else seccomp_program(os.uname().machine)
    if program is None:
        return False
    count = len(program) // 8
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(count, ctypes.cast(buffer, ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if _libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                   ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
    return True


def set_limit(which: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(which, (value, value))


def apply_limits(limits: dict) -> None:
    """rlimits every candidate inherits from the zygote: address space, file size, open files,
    processes (RLIMIT_NPROC: counted per uid, and ignored for root, which the zygote may be),
    no core files. The CPU limit is set per candidate (it counts each process's own time)."""
    set_limit(resource.RLIMIT_CORE, 0)
    set_limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
    set_limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
    set_limit(resource.RLIMIT_NOFILE, limits.get("open_files"))
    set_limit(resource.RLIMIT_NPROC, limits.get("processes"))
    set_limit(resource.RLIMIT_MSGQUEUE, 0)
    set_limit(resource.RLIMIT_MEMLOCK, 0)


def become(uid: int | None) -> None:
    """Drop to ``uid`` (and the same gid), with no supplementary groups; this also drops every
    capability. No-op for None (a sandbox that already runs unprivileged)."""
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid):
        raise OSError(errno.EPERM, "could not drop privileges")


def isolate_fds(keep: dict[int, int]) -> None:
    """Move each ``source: target`` descriptor into place, close everything else, and point
    0, 1, 2 at /dev/null unless kept."""
    moved = {}
    for source, target in keep.items():
        moved[target] = os.dup(source)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in moved:
            os.dup2(devnull, fd)
    for target, temp in moved.items():
        os.dup2(temp, target)
    top = max([2, *moved])
    os.closerange(top + 1, 1 << 16)
    for fd in range(3, top):
        if fd not in moved:
            try:
                os.close(fd)
            except OSError:
                pass


def reap() -> list[tuple[int, int]]:
    """Collect every finished child: [(pid, wait status)]."""
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, status))


def exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit status {os.WEXITSTATUS(status)}"


# System V IPC cleanup: objects a candidate created outlive it unless removed.
class _Exit:
    """``exit()`` and ``quit()`` (``site`` is not loaded, so they are not builtins)."""

    def __repr__(self) -> str:
        return "Use exit() to exit"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


# --------------------------------------------------------------------------------------------
# The candidate: set itself up, then run the sample's code and answer the judge.


def candidate_main(sock_fd: int, config: dict) -> None:
    """Never returns: exits when the judge hangs up (or is killed by the server). The first
    frame on ``sock_fd`` is the sample's spec, written there by the server (so the zygote, whose
    every write after a fork is a copy-on-write fault, never decodes it). Everything that can be
    done once is done in the zygote (``exit``, ``argv``, the environment, the seccomp filter):
    each step here costs copy-on-write faults on every sample."""
    try:
        os.setsid()
        os.close(ZYGOTE_FD)  # the zygote's control socket: now only the judge's socket is open
        spec = pickle.loads(recv(sock_fd))
        os.chdir(config["workdir"])
        cpu_s = max(1, math.ceil(spec["cpu_s"]))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        become(config.get("candidate_uid"))
    except BaseException:  # noqa: BLE001 - a candidate that cannot be isolated must not run
        os._exit(70)
    try:
        if spec["mode"] == "stdio":
            serve_stdio(sock_fd, spec)
        else:
            serve_function(sock_fd, spec, spec.get("names", []))
    finally:
        os._exit(0)


def first_to_die() -> None:
    """Ask the kernel to pick this process (and every candidate it forks, which inherit it)
    first when the sandbox's memory cgroup is full, rather than the server or the judge."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, b"1000")
    except OSError:
        pass
    finally:
        os.close(fd)


def load_program(spec: dict, sanitize: bool) -> tuple[object | None, dict]:
    """The sample's code object: compiled by the host and sent marshalled (``code``, with what
    compiling said in ``loaded``), which spares the candidate the parser's memory (every page
    it touches is a fault in a fresh fork), or compiled here from ``program`` where the host's
    interpreter is not this one."""
    if "code" in spec:
        code = spec["code"]
        return (marshal.loads(code) if code is not None else None), dict(spec["loaded"])
    return compile_program(spec["program"], sanitize)


def compile_program(source: str, sanitize: bool) -> tuple[object | None, dict]:
    """Compile a program; a source that does not parse loses trailing lines until it does (a
    completion cut by the token limit). With ``sanitize``, top-level statements that only run
    or test the code (asserts, ``print(...)``, ``main()``, calls of the program's own
    functions, ``unittest.main()``) are dropped, as EvalPlus's sanitizer does."""
    if not (sanitize and _RUNS_CODE.search(source)):
        try:
            return compile(source, "<candidate>", "exec"), {"ok": True, "salvaged_lines": 0}
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
    import ast  # only here: the zygote does not load the ast module for programs that need none

    lines = source.splitlines()
    first_error: BaseException | None = None
    for cut in range(len(lines), max(0, len(lines) - SALVAGE_LINES - 1), -1):
        text = "\n".join(lines[:cut])
        try:
            tree = ast.parse(text, "<candidate>")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            first_error = first_error or exc
            continue
        if sanitize:
            defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            tree.body = [node for node in tree.body if not _runs_code(ast, node, defined)]
        try:
            code = compile(tree, "<candidate>", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            first_error = first_error or exc
            continue
        return code, {"ok": True, "salvaged_lines": len(lines) - cut}
    return None, {"ok": False, "kind": "syntax-error", "error": describe(first_error or SyntaxError("empty"))}


_RUNS_CODE = re.compile(r"^(assert\b|[A-Za-z_][\w.]*\s*\()", re.M)
"""A top-level line that may only run or test the code (the slow path parses and looks)."""


def _runs_code(ast, node, defined: set[str]) -> bool:  # noqa: ANN001 - the ast module and a node
    if isinstance(node, ast.Assert):
        return True
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    if isinstance(func, ast.Attribute):
        return func.attr in ("main", "testmod")
    if not isinstance(func, ast.Name):
        return False
    return func.id in ("print", "input", "exit", "quit") or func.id in defined


def serve_function(fd: int, spec: dict, names: list) -> None:
    """Run the program once, say which of ``names`` it defines, then answer calls. Every
    answer is one frame: a tag byte (``REPLY_TAGS``) and ``encode_value``'s bytes (never a
    pickle: the judge decodes them with ``decode_value``, which builds plain values only)."""
    code, info = load_program(spec, sanitize=True)
    namespace: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    if code is not None:
        try:
            exec(code, namespace)  # noqa: S102 - this is the sandbox
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: the program ended early
            info = {"ok": False, "kind": "load-error", "error": describe(exc)}
    if info["ok"]:
        info["names"] = _names(names, namespace)
    send(fd, b"L" + encode_value(info))
    if not info["ok"]:
        return
    reader = Reader(fd)
    while True:
        try:
            request = pickle.loads(reader.frame())
            if request[0] == "batch":  # many inputs at once: one answer each, sent as soon as it is ready
                _op, name, inputs = request
                for args in inputs:
                    send(fd, _call(namespace, name, args, {}))
            else:
                _op, name, args, kwargs = request
                send(fd, _call(namespace, name, args, kwargs))
        except (Closed, OSError):
            return


REPLY_TAGS = {b"L": "loaded", b"O": "value", b"R": "raised", b"U": "unencodable", b"D": "ran"}
"""First byte of a candidate's answer."""


def _names(names: list, namespace: dict) -> dict:
    found = {}
    for name in names:
        if name not in namespace:
            continue
        value = namespace[name]
        if type(value).__name__ == "module":
            found[name] = ("module", value.__name__)
        elif callable(value):
            found[name] = ("call",)
        else:
            try:
                found[name] = ("value", encode_value(value))
            except Exception:  # noqa: BLE001 - a global that is not plain data is just not offered
                pass
    return found


def _call(namespace: dict, name: str, args: tuple, kwargs: dict) -> bytes:
    try:
        value = namespace[name](*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the candidate's exceptions are answers
        return b"R" + encode_value((type(exc).__name__, shorten(str(exc))))
    try:
        return b"O" + encode_value(value)
    except BaseException:  # noqa: BLE001 - not plain data: its type, truth value and repr only
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        try:
            truth = bool(value)
        except BaseException:  # noqa: BLE001
            truth = None
        try:
            text = shorten(repr(value), 120)
        except BaseException:  # noqa: BLE001
            text = f"<{kind}>"
        return b"U" + encode_value((kind, truth, text))


def serve_stdio(fd: int, spec: dict) -> None:
    """Check that the program compiles, then run it once per test case the judge sends, each
    time in a new child process with the case on stdin, and send back what it printed."""
    code, info = load_program(spec, sanitize=False)
    send(fd, b"L" + encode_value(info))
    if code is None:
        return
    reader = Reader(fd)
    while True:
        try:
            _op, data, timeout_s, cap = pickle.loads(reader.frame())
        except (Closed, OSError):
            return
        send(fd, b"D" + encode_value(run_case(code, data, timeout_s, cap)))


def run_case(code: object, data: bytes, timeout_s: float, cap: int) -> dict:
    """Run the compiled program in a child with ``data`` on stdin; its stdout (at most ``cap``
    bytes), exit status and time. The child's whole process group is killed at the end."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _run_child(code, in_r, out_w)
    os.close(in_r)
    os.close(out_w)
    try:
        result = _collect(pid, in_w, out_r, data, start + timeout_s, cap)
    finally:
        os.close(out_r)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        _pid, status = os.waitpid(pid, 0)
    result["exit"] = exit_reason(status)
    result["ok"] = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    result["seconds"] = time.monotonic() - start
    return result


def _run_child(code: object, in_r: int, out_w: int) -> None:
    try:
        os.setpgid(0, 0)
        isolate_fds({in_r: 0, out_w: 1})
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                                     errors="replace")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False), 1 << 16),
                                      encoding="utf-8", errors="replace")
        status = 0
        try:
            exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001
            status = 1
        try:
            sys.stdout.flush()
        except BaseException:  # noqa: BLE001
            status = status or 1
        os._exit(status & 0xFF)
    except BaseException:  # noqa: BLE001
        os._exit(71)


def _collect(pid: int, in_w: int, out_r: int, data: bytes, deadline: float, cap: int) -> dict:
    """Feed stdin and read stdout until the child has exited and its stdout is drained, the
    deadline passes, or the output exceeds ``cap``. Closes ``in_w``."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(out_r, select.POLLIN | select.POLLHUP)
    poller.register(pidfd, select.POLLIN)
    pending = memoryview(data)
    writing = bool(pending)
    if writing:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT | select.POLLERR)
    else:
        os.close(in_w)
    output = bytearray()
    timed_out = exited = False
    reading = True
    try:
        while reading and len(output) <= cap:
            wait = deadline - time.monotonic()
            if wait <= 0:
                timed_out = True
                break
            for fd, _event in poller.poll(math.ceil(wait * 1000)):
                if fd == out_r:
                    chunk = os.read(out_r, 1 << 16)
                    output += chunk
                    if not chunk:
                        reading = False
                        poller.unregister(out_r)
                elif fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending[: 1 << 16]):]
                    except OSError:
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(in_w)
                        os.close(in_w)
                        writing = False
                elif fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
            if exited and reading:
                _drain(out_r, output, cap)
                break
    finally:
        os.close(pidfd)
        if writing:
            os.close(in_w)
    return {"stdout": bytes(output[:cap]), "timeout": timed_out, "overflow": len(output) > cap}


def _drain(fd: int, output: bytearray, cap: int) -> None:
    """What is left in a pipe after its writer exited (a grandchild holding it open is not
    waited for)."""
    os.set_blocking(fd, False)
    try:
        while len(output) <= cap:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            output += chunk
    except BlockingIOError:
        return


# --------------------------------------------------------------------------------------------
# The zygote: a pristine interpreter with the heavy modules loaded, forking one candidate per
# sample. It never receives a test or an expected value.


ZYGOTE_FD = 3
"""The zygote's control socket. Its other descriptors are 0, 1, 2 on /dev/null, so a candidate
forked from it holds nothing but the socket it was sent, once it closes this one."""


def zygote_main(ctl_fd: int, heavy: bool) -> None:
    isolate_fds({ctl_fd: ZYGOTE_FD})
    ctl_fd = ZYGOTE_FD
    control = socket.socket(fileno=ctl_fd)
    config = pickle.loads(recv(ctl_fd))
    prctl(PR_SET_DUMPABLE, 0)
    loaded, failed = preload(config, heavy)
    os.environ.update(HOME=config["workdir"], TMPDIR=config["workdir"])
    builtins.exit = builtins.quit = _Exit()  # type: ignore[attr-defined]
    sys.argv = ["candidate"]
    os.umask(0o077)
    first_to_die()
    apply_limits(config["limits"])
    if config.get("seccomp", True):
        install_seccomp()  # inherited by every candidate, so no sample pays for installing it
    gc.collect()
    gc.freeze()
    send(ctl_fd, pickle.dumps(("ready", loaded, failed)))
    space = socket.CMSG_SPACE(4)
    while True:  # as little as possible per fork: each page written here is a fault after it
        try:
            marker, ancdata, _flags, _address = control.recvmsg(1, space)
        except OSError:
            return
        if not marker or len(ancdata) != 1 or len(ancdata[0][2]) != 4:
            return
        fd = int.from_bytes(ancdata[0][2], sys.byteorder)
        reap()
        pid = os.fork()
        if pid == 0:
            candidate_main(fd, config)
        os.close(fd)
        try:
            write_all(ctl_fd, pid.to_bytes(4, "big"))
        except Closed:
            return


def preload(config: dict, heavy: bool) -> tuple[list[str], list[str]]:
    """Put the sandbox's package folders on the path and import the modules named in the
    config once, so that every candidate starts with them loaded; the heavy zygote also
    imports the packages (numpy), which make every fork slower."""
    site_paths = config.get("site_paths")
    if site_paths is None:
        import site

        site.main()
    else:
        sys.path.extend(site_paths)
    loaded, failed = [], []
    for name in [*config.get("preload", ()), *(config.get("heavy", ()) if heavy else ())]:
        try:
            __import__(name)
            loaded.append(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional module is reported, not fatal
            failed.append(f"{name}: {describe(exc)}")
    return loaded, failed


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "zygote":
    zygote_main(int(sys.argv[2]), sys.argv[3] == "heavy")
