"""The fork server: pid 1 of the sandbox. It reads jobs on fd 0 and answers on fd 1, starts the
zygotes and the judge, hands each sample to them, retries a sample that ran out of time, and
cleans up after it. Standard library only; the host sends its text and its siblings' (see
docs/sandbox.md for the processes and why)."""

from __future__ import annotations

import collections
import gc
import os
import pickle
import re
import signal
import socket
import sys
import time

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.candidate import describe, reap
    from boundary.workers.sandbox.cleanup import Cleanup, CleanupFailed
    from boundary.workers.sandbox.framing import (
        BOOTSTRAP,
        Closed,
        Timeout,
        TooLarge,
        bundle,
        read_exact,
        recv,
        send,
        write_all,
    )
    from boundary.workers.sandbox.hardening import PR_SET_DUMPABLE, isolate_fds, prctl, seccomp_program
    from boundary.workers.sandbox.judge import judge_main
    from boundary.workers.sandbox.report import Report, grading_error, json_bytes, sample_failure


ZYGOTE_TIMEOUT_S = 30.0
"""Seconds the zygote may take to start (it imports numpy) or to answer a request."""


GRACE_S = 2.0
"""Seconds past a sample's deadline the server waits for the judge before killing it."""


class ZygoteError(Exception):
    """The zygote did not answer."""


class Zygote:
    """The server's handle on one zygote: an exec'd interpreter that forks candidates. It is
    given only the zygote's sources (``client.ZYGOTE_MODULES``)."""

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
        write_all(source_w, bundle(self.source))
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
    """The jobs' loop: plans cached in step with the judge's, one sample at a time."""

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
        self.cleaner = Cleanup(config, self._reap, self._kept)
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

    def handle(self, job: dict, size: int) -> Report:
        plan = self.plan_for(job, size)
        if plan is None:
            return Report("need-plan", need_plan=job["plan_key"])
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
            return grading_error(str(exc))
        finally:
            theirs.close()
        try:
            send(ours.fileno(), pickle.dumps(spec, protocol=5))  # the candidate's first read
        except Closed:  # no candidate holds the other end (the zygote could not fork)
            ours.close()
            try:
                self.candidate_pid = zygote.forked()
            except ZygoteError as exc:
                return grading_error(str(exc))
            return grading_error("the candidate process died before it started")
        try:
            report = self.judge(job, plan, ours)
        finally:
            ours.close()
        try:
            self.candidate_pid = zygote.forked()
        except ZygoteError as exc:
            return grading_error(str(exc))
        return report

    def judge(self, job: dict, plan: dict, link: socket.socket) -> Report:
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
            report = Report.decode(recv(self.judge_sock.fileno(), time.monotonic() + budget + GRACE_S))
        except Timeout:
            self.stop_judge()
            return Report("timeout", tests={}, first_failure={
                "group": None, "test": None, "outcome": "timeout",
                "message": f"the sample ran past its {budget:g}s budget"})
        except (Closed, OSError, TooLarge):
            self.stop_judge()
            return grading_error("the judge process died")
        except ValueError:
            self.stop_judge()
            return grading_error("the judge answered out of protocol")
        self.check_judge(grew_by_plan=message["plan"] is not None, failed=report.failed_to_grade)
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

    def _kept(self) -> set:
        """The server's own processes: itself, the judge, the zygotes (None where not running)."""
        return {os.getpid(), self.judge_pid, *(z.pid for z in self.zygotes.values())}

    def _reap(self) -> None:
        for pid, _status in reap():
            for zygote in self.zygotes.values():
                if pid == zygote.pid:
                    zygote.pid = None
                    zygote.stop()
            if pid == self.judge_pid:
                self.judge_pid = None
                self.stop_judge()

    def grade(self, job: dict, size: int) -> Report:
        """The sample's report, its processes gone and its scratch space reset. A sample that
        ran out of time is graded again, once, with every limit multiplied by ``retry_scale``: a
        correct sample that was slow only because the machine was busy then passes."""
        reply = self.attempt(job, size)
        if job.get("record") or not reply.timed_out:
            return reply
        scale = retry_scale()
        again = self.attempt({**job, "plan": None, "time_scale": scale}, 0)
        if again.need_plan is None:
            again.retried = round(scale, 2)
            return again
        return reply

    def attempt(self, job: dict, size: int) -> Report:
        """One grading of the sample, then its cleanup (CleanupFailed passes through)."""
        try:
            reply = self.handle(job, size)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not end the server
            reply = grading_error(f"sandbox server: {describe(exc)}")
        candidate, self.candidate_pid = self.candidate_pid, None
        self.cleaner.after_sample(candidate)  # before the answer: when the host has a verdict, the sample is gone
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
                send(1, json_bytes({"pong": True, "samples": self.samples, "judge": self.judge_pid,
                                    "zygotes": [z.pid for z in self.zygotes.values() if z.pid is not None]}))
                continue
            try:
                reply = self.grade(message, len(frame))
            except CleanupFailed as exc:
                send(1, cleanup_failure(str(exc)).encode())
                return  # the host starts a fresh sandbox
            send(1, reply.encode())


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


def cleanup_failure(message: str) -> Report:
    """The report of a sample that left the sandbox unfit for the next one: failed, whatever its
    tests said, and the sandbox is replaced."""
    return sample_failure("failed", "crashed", f"the sample left the sandbox unusable: {message}", restart=True)


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


def server_main(sources: list[bytes]) -> None:
    """The server's life: its config on fd 0, the zygote and the judge started, then jobs.
    ``sources``: every module's text, the zygote's first (``zygote_sources`` of them)."""
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
    server = Server(config, sources[: int(config["zygote_sources"])])
    try:
        server.zygotes[False].start()
        server.start_judge()
        server.cleaner.reset_scratch()
    except (ZygoteError, CleanupFailed) as exc:
        send(1, json_bytes({"ready": False, "error": str(exc)}))
        return
    send(1, json_bytes({
        "ready": True,
        "python": sys.version.split()[0],
        "hexversion": sys.hexversion,
        "implementation": sys.implementation.name,
        "uid": os.getuid(),
        "pid": os.getpid(),
        "preloaded": server.zygotes[False].preloaded[0],
        "preload_failed": server.zygotes[False].preloaded[1],
        "seccomp": bool(config.get("seccomp")) and seccomp_program(os.uname().machine) is not None,
    }))
    server.serve()


if __name__ == "__main__" and sys.argv[1:2] == ["server"]:
    server_main(globals()["__boundary_sources__"])
