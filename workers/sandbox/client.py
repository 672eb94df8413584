"""The host's end of one sandbox: a fork server started through a backend (bubblewrap, Docker,
or none), fed jobs one at a time, restarted when it dies and replaced every N samples."""

from __future__ import annotations

import itertools
import json
import marshal
import pickle
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from boundary.api.errors import GradingError
from boundary.api.types import CodeJob
from boundary.workers.sandbox import (
    asserts,
    candidate,
    cleanup,
    compare,
    framing,
    hardening,
    judge,
    link,
    oracles,
    report,
    server,
    values,
    zygote,
)
from boundary.workers.sandbox.candidate import compile_program
from boundary.workers.sandbox.framing import Closed, Timeout, bundle, frame, read_frame
from boundary.workers.sandbox.options import SandboxOptions
from boundary.workers.sandbox.report import Report, grading_error, sample_failure
from boundary.workers.sandbox.server import RETRY_MAX_SCALE

ZYGOTE_MODULES = (values, framing, hardening, candidate, zygote)
"""The modules the zygote runs, in order: what a candidate needs and nothing else (each page
the zygote holds is a copy-on-write fault for every sample it forks)."""

SERVER_MODULES = (report, oracles, compare, asserts, cleanup, link, judge, server)
"""The rest of the server's program, run after the zygote's modules in the same namespace."""

SERVER_SOURCES = tuple(Path(module.__file__).read_bytes() for module in (*ZYGOTE_MODULES, *SERVER_MODULES))
"""The program the sandbox's interpreter runs (``framing.BOOTSTRAP`` reads it); sent on its
stdin: nothing is mounted for it."""

STARTUP_TIMEOUT_S = 60.0
"""Seconds a new sandbox may take to say it is ready (bwrap, the interpreter, the zygote's
imports; docs/sandbox.md has how long it takes)."""

HOST_GRACE_S = 15.0
"""Seconds past a job's own deadline before the host gives up on the sandbox and kills it (the
server enforces the deadline itself, and cleans up after the previous sample first)."""


class Channel(Protocol):
    pid: int

    def write(self, data: bytes) -> None: ...

    def read_exact(self, size: int, deadline: float) -> bytes: ...

    def alive(self) -> bool: ...

    def stderr_tail(self, limit: int = 2000) -> str: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """How to start a sandbox server (see boundary.workers.sandbox.bwrap, .docker, .unsafe)."""

    name: str

    def launch(self) -> Channel: ...

    def server_config(self) -> dict[str, Any]: ...

    def explain(self, channel: Channel | None, problem: str) -> str: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class SandboxDied(Exception):
    """The sandbox closed its channel in the middle of a job."""


class ForkServer:
    """A warm sandbox (boundary.api.types.Sandbox): one job at a time, plans sent once per sandbox."""

    def __init__(self, backend: Backend, options: SandboxOptions):
        self._backend = backend
        self.options = options
        self.backend = backend.name
        self._channel: Channel | None = None
        self._plans: set[str] = set()
        self._jobs = 0
        self._ids = itertools.count(1)
        self.info: dict[str, Any] = {}
        """The running server's greeting: interpreter version, preloaded modules, uid."""
        self.starts = 0
        """Sandboxes started so far (the first, recycles, and restarts after a death)."""
        self._compiles = False
        """Whether the sandbox runs this very interpreter, so that programs are compiled here and
        sent as code objects (see ``candidate.load_program``)."""

    @property
    def pid(self) -> int | None:
        """Host pid of the sandbox's root process (bwrap's), or None when not running."""
        return self._channel.pid if self._channel is not None else None

    def start(self) -> None:
        """Start a sandbox and wait until its server and zygote are ready. GradingError says
        what failed (e.g. user namespaces blocked)."""
        self.stop()
        try:
            channel = self._backend.launch()
        except GradingError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the backend raised, in one line
            raise GradingError(self._backend.explain(None, f"{type(exc).__name__}: {exc}")) from None
        try:
            channel.write(bundle(SERVER_SOURCES))
            config = {**self._backend.server_config(), "zygote_sources": len(ZYGOTE_MODULES)}
            channel.write(frame(pickle.dumps(config, protocol=5)))
            hello = json.loads(read_frame(channel.read_exact, time.monotonic() + STARTUP_TIMEOUT_S, None))
        except (Closed, Timeout, ValueError) as exc:
            problem = "it did not answer in time" if isinstance(exc, Timeout) else "it exited"
            message = self._backend.explain(channel, problem)
            channel.close()
            raise GradingError(message) from None
        if not hello.get("ready"):
            channel.close()
            raise GradingError(self._backend.explain(None, str(hello.get("error"))))
        self._channel, self.info = channel, hello
        self._compiles = (hello.get("hexversion") == sys.hexversion
                          and hello.get("implementation") == sys.implementation.name)
        self._plans.clear()
        self._jobs = 0
        self.starts += 1

    def run(self, job: CodeJob) -> Report:
        """The sandbox's report on ``job``. A sandbox that dies during a job is restarted and
        the job tried once more; a second death is the sample's doing and fails it."""
        if self._channel is None or self._jobs >= self.options.recycle_samples or not self._channel.alive():
            self.start()
        for attempt in (1, 2):
            try:
                return self._exchange(job)
            except SandboxDied:
                self.stop()
                if attempt == 2:
                    return sample_failure("crashed", "crashed", "the sandbox died while running the sample (twice)")
                self.start()
            except Timeout:
                self.stop()
                return grading_error(f"the sandbox did not answer within {host_wait_s(job):g}s")
        raise AssertionError("unreachable")

    def ping(self) -> dict[str, Any]:
        if self._channel is None:
            self.start()
        assert self._channel is not None
        self._channel.write(frame(pickle.dumps({"op": "ping"})))
        return json.loads(read_frame(self._channel.read_exact, time.monotonic() + 30, None))

    def stop(self) -> None:
        if self._channel is not None:
            try:
                self._channel.write(frame(pickle.dumps({"op": "exit"})))
            except Closed:
                pass
            self._channel.close()
            self._channel = None

    def close(self) -> None:
        self.stop()
        self._backend.close()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, **self._backend.describe(), **({"server": self.info} if self.info else {})}

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, job: CodeJob) -> Report:
        assert self._channel is not None
        message: dict[str, Any] = {
            "op": "job", "id": next(self._ids), "plan_key": job.plan_key, "program": job.program,
            "timeout_s": job.timeout_s, "record": job.record, "all_tests": job.all_tests,
        }
        if self._compiles:
            code, message["loaded"] = compile_program(job.program, job.plan.get("mode") != "stdio")
            message["code"] = marshal.dumps(code) if code is not None else None
        if job.plan_key not in self._plans:
            message["plan"] = dict(job.plan)
        reply = self._send(message, host_wait_s(job))
        if reply.need_plan is not None:  # the server's plan cache dropped it
            message["plan"] = dict(job.plan)
            reply = self._send(message, host_wait_s(job))
        self._plans.add(job.plan_key)
        self._jobs += 1
        if reply.restart:  # the sample left the sandbox unusable: the next one gets a new one
            reply.restart = False
            self.stop()
        return reply

    def _send(self, message: dict[str, Any], wait_s: float) -> Report:
        assert self._channel is not None
        try:
            self._channel.write(frame(pickle.dumps(message, protocol=5)))
            return Report.decode(read_frame(self._channel.read_exact, time.monotonic() + wait_s, None))
        except Closed:
            raise SandboxDied from None


def host_wait_s(job: CodeJob) -> float:
    """Seconds the host waits for a job's answer: its budget, and a second try with limits up
    to ``RETRY_MAX_SCALE`` times larger for a sample that timed out (reference runs get none)."""
    tries = 1 if job.record else 1 + RETRY_MAX_SCALE
    return job.timeout_s * tries + HOST_GRACE_S
