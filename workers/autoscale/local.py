"""The local backend: `boundary worker ...` processes on this host, started and stopped (with
Celery's warm shutdown) by the controller; see docs/fleet.md."""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boundary.api import defaults
from boundary.api.autoscale_policy import QueuePolicy

log = logging.getLogger("boundary.autoscale")

QUICK_EXIT_S = 30.0
"""A worker that exits within this many seconds of its start counts as a failed start."""


def boundary_program() -> list[str]:
    """The `boundary` console script of this installation."""
    here = Path(sys.executable).with_name("boundary")
    if here.exists():
        return [str(here)]
    found = shutil.which("boundary")
    return [found] if found else [sys.executable, "-c", "from boundary.api.cli import main; main()"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM (a warm shutdown) to the worker when the controller dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Worker:
    queue: str
    process: subprocess.Popen
    log: Path
    started_at: float
    started_wall: float
    stopping_since: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": "stopping" if self.stopping_since is not None else "running",
                "started_at": self.started_wall, "log": str(self.log)}


@dataclass
class _Restarts:
    failures: int = 0
    not_before: float = 0.0


@dataclass
class LocalBackend:
    """Worker processes of this controller. ``env`` is their environment (broker and database
    URLs included); their output goes to one log file each in ``log_dir``."""

    env: Mapping[str, str]
    log_dir: Path | None = None
    """Default: a new temporary folder, made when the first worker starts."""
    drain_timeout_s: float = defaults.AUTOSCALE_DRAIN_TIMEOUT_S
    program: Sequence[str] = field(default_factory=boundary_program)
    clock: Callable[[], float] = time.monotonic
    name: str = "local"
    _workers: list[Worker] = field(default_factory=list)
    _restarts: dict[str, _Restarts] = field(default_factory=dict)
    _started: int = 0

    def running(self, queue: QueuePolicy) -> int:
        self.reap()
        return len(self._live(queue.queue))

    def stopping(self, queue: QueuePolicy) -> int:
        return sum(w.queue == queue.queue and w.stopping_since is not None for w in self._workers)

    def workers(self, queue: QueuePolicy) -> list[dict[str, Any]]:
        return [w.describe() for w in self._workers if w.queue == queue.queue]

    def plan(self, queue: QueuePolicy, current: int, desired: int) -> str:
        if desired > current:
            return f"start {desired - current} x `boundary {shlex.join(queue.worker_command())}`"
        return f"stop {current - desired} worker(s) of {queue.queue} (SIGTERM: each finishes its batch)"

    def scale(self, queue: QueuePolicy, desired: int) -> None:
        """Start or stop workers until ``desired`` of them take work (stopping ones excluded)."""
        self.reap()
        live = self._live(queue.queue)
        for worker in sorted(live, key=lambda w: w.started_at, reverse=True)[: max(0, len(live) - desired)]:
            self._stop(worker)
        missing = desired - len(live)
        if missing > 0:
            restarts = self._restarts.setdefault(queue.queue, _Restarts())
            if self.clock() < restarts.not_before:
                return
            for _ in range(missing):
                if not self._start(queue):
                    break

    def reap(self) -> None:
        """Forget workers that exited (noting crashes); kill those past their drain timeout."""
        now = self.clock()
        for worker in list(self._workers):
            code = worker.process.poll()
            if code is None:
                if worker.stopping_since is not None and now - worker.stopping_since > self.drain_timeout_s:
                    log.warning("%s: worker pid %s still busy %.0fs after it was told to stop: killing it "
                                "(its batch comes back after the visibility timeout)", worker.queue, worker.pid,
                                now - worker.stopping_since)
                    self._signal(worker, signal.SIGKILL, group=True)
                continue
            self._workers.remove(worker)
            if worker.stopping_since is not None:
                log.info("%s: worker pid %s stopped after %.1fs of draining (exit %s)", worker.queue, worker.pid,
                         now - worker.stopping_since, code)
            else:
                self._crashed(worker, code, now)

    def close(self, wait_s: float | None = None) -> None:
        """Stop every worker (each finishes its batch) and wait up to ``wait_s`` (default: the
        drain timeout) before killing what is left."""
        for worker in self._workers:
            if worker.stopping_since is None:
                self._stop(worker)
        deadline = self.clock() + (self.drain_timeout_s if wait_s is None else wait_s)
        while self._workers and self.clock() < deadline:
            self.reap()
            time.sleep(0.1)
        self.kill()

    def kill(self) -> None:
        """SIGKILL every worker and its children, now."""
        for worker in self._workers:
            self._signal(worker, signal.SIGKILL, group=True)
            worker.process.wait()
            log.warning("%s: worker pid %s killed", worker.queue, worker.pid)
        self._workers.clear()

    def _live(self, queue: str) -> list[Worker]:
        return [w for w in self._workers if w.queue == queue and w.stopping_since is None]

    def _start(self, queue: QueuePolicy) -> bool:
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="boundary-workers-"))
            log.info("worker logs go to %s", self.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._started += 1
        path = self.log_dir / f"{queue.queue}-{self._started}.log"
        command = [*self.program, *queue.worker_command()]
        try:
            with open(path, "ab") as out:
                process = subprocess.Popen(command, env=dict(self.env), stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True,
                                           preexec_fn=_die_with_parent)
        except OSError as exc:
            restarts = self._restarts.setdefault(queue.queue, _Restarts())
            restarts.not_before = self.clock() + defaults.AUTOSCALE_RESTART_BACKOFF_MAX_S
            log.error("%s: cannot start `%s`: %s; next try in %.0fs", queue.queue, shlex.join(command), exc,
                      defaults.AUTOSCALE_RESTART_BACKOFF_MAX_S)
            return False
        self._workers.append(Worker(queue.queue, process, path, self.clock(), time.time()))
        log.info("%s: started worker pid %s: boundary %s (log %s)", queue.queue, process.pid,
                 shlex.join(queue.worker_command()), path)
        return True

    def _stop(self, worker: Worker) -> None:
        worker.stopping_since = self.clock()
        self._signal(worker, signal.SIGTERM, group=False)  # the main process only: it drains its pool
        log.info("%s: stopping worker pid %s (warm shutdown: it finishes its current batch)", worker.queue, worker.pid)

    def _crashed(self, worker: Worker, code: int, now: float) -> None:
        restarts = self._restarts.setdefault(worker.queue, _Restarts())
        ran = now - worker.started_at
        restarts.failures = restarts.failures + 1 if ran < QUICK_EXIT_S else 1
        delay = 0.0 if restarts.failures <= 1 else min(defaults.AUTOSCALE_RESTART_BACKOFF_MAX_S,
                                                        5.0 * 2 ** (restarts.failures - 2))
        restarts.not_before = now + delay
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        log.warning("%s: worker pid %s exited on its own after %.1fs (%s; last line of %s: %s); replacing it%s",
                    worker.queue, worker.pid, ran, how, worker.log, _last_line(worker.log) or "-",
                    f" in {delay:.0f}s" if delay else "")

    @staticmethod
    def _signal(worker: Worker, sig: int, group: bool) -> None:
        try:
            if group:
                os.killpg(worker.pid, sig)
            else:
                os.kill(worker.pid, sig)
        except ProcessLookupError:
            pass


def _last_line(path: Path, limit: int = 200) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
