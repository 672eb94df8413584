"""The candidate: the process forked from the zygote for one sample. It sets itself up (its own
session, no descriptor but its socket to the judge, a CPU limit, the candidate uid), runs the
sample's program and answers the judge: which of the names the tests use it defines, and one
call at a time; for stdin/stdout problems it runs one child per test case. It never sees a test
or an expected value. Standard library only (see docs/sandbox.md)."""

from __future__ import annotations

import builtins
import io
import marshal
import math
import os
import pickle
import re
import resource
import select
import signal
import sys
import time

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.framing import Closed, Reader, recv, send
    from boundary.workers.sandbox.hardening import become, isolate_fds
    from boundary.workers.sandbox.values import encode_value


MESSAGE_CHARS = 300
"""Longest text kept from an exception message or a value's repr in a report."""


SALVAGE_LINES = 60
"""Trailing lines dropped, one at a time, from a program that does not parse (a completion cut
by the token limit), looking for a prefix that does."""


ZYGOTE_FD = 3
"""The zygote's control socket. Its other descriptors are 0, 1, 2 on /dev/null, so a candidate
forked from it holds nothing but the socket it was sent, once it closes this one."""


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    message = shorten(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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
