"""Byte channels to a sandbox server: a local process's stdin and stdout (bubblewrap, or no
sandbox), with reads that have deadlines and the process's stderr kept for error messages."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from boundary.workers.sandbox.framing import Closed, read_exact, write_all


class ProcessChannel:
    """A sandbox server running as a child process, spoken to over its stdin and stdout."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | Path | None = None):
        self._stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                env=dict(env), cwd=cwd, start_new_session=True, close_fds=True,
            )
        except OSError:
            self._stderr.close()
            raise
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()

    @property
    def pid(self) -> int:
        return self.process.pid

    def write(self, data: bytes) -> None:
        try:
            write_all(self._in, data)
        except OSError as exc:
            raise Closed(str(exc)) from None

    def read_exact(self, size: int, deadline: float | None) -> bytes:
        return read_exact(self._out, size, deadline)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill the sandbox's whole process group and reap it."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        self.kill()
        self._stderr.close()


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and its live descendants, including the
    children each has already reaped (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2:].split()
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total
