"""The judge: holds the tests and expected values, drives the candidate through them over its
link, and reports per-test outcomes. It runs as its own uid under its own seccomp filter, and
nothing a candidate sends survives its sample here. Standard library only (run in the server;
see docs/sandbox.md)."""

from __future__ import annotations

import base64
import builtins
import gc
import os
import pickle
import resource
import socket
import sys
import time
import traceback

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.asserts import RECORD_FN, rewrite_asserts
    from boundary.workers.sandbox.candidate import describe, shorten
    from boundary.workers.sandbox.compare import evalplus_match, output_matches, plain_loads, show
    from boundary.workers.sandbox.framing import Closed, recv, send
    from boundary.workers.sandbox.hardening import (
        PR_SET_DUMPABLE,
        become,
        install_seccomp,
        isolate_fds,
        prctl,
        set_limit,
    )
    from boundary.workers.sandbox.link import Gone, Link, Raised, Remote, Slow
    from boundary.workers.sandbox.oracles import MBPP_OUTPUT_NOT_NONE_TASKS
    from boundary.workers.sandbox.report import Report
    from boundary.workers.sandbox.values import Undecodable, encode_value


class _StopGroup(BaseException):
    """Raised out of a test script after its first failure (when stopping early)."""


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

    def run(self) -> Report:
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

    def record(self) -> Report:
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
        return Report("recorded", outputs=outputs, seconds=time.monotonic() - self.start)

    def report(self, loaded: dict) -> Report:
        passed = sum(t.count("P") for t in self.tests.values())
        total = sum(len(t) for t in self.tests.values())
        ok = loaded["ok"] and self.failure is None and all(self.tests.values()) and passed == total
        status = "passed" if ok else _status(self.failure)
        return Report(status, tests=self.tests, passed=passed, total=total, first_failure=self.failure,
                      salvaged_lines=loaded.get("salvaged_lines", 0), seconds=round(time.monotonic() - self.start, 6))


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


def judge_main(ctl_fd: int, config: dict, seccomp: bytes | None) -> None:
    """The judge's loop (never returns), as the judge uid under its own seccomp filter: for
    each job, the candidate's socket arrives over the control socket, then the job; the report
    goes back the same way. Plans are kept until the server says to forget them. Why nothing a
    candidate sends survives its sample here: docs/sandbox.md."""
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
            report = Report("error", error=f"the judge failed: {describe(exc)}",
                            trace=shorten(traceback.format_exc(), 2000))
        finally:
            os.close(fds[0])
        send(3, report.encode())
