"""Autoscaling for real: Redis, PostgreSQL, `boundary autoscale run` and the `boundary worker`
processes it starts (echo engine: instant, deterministic text, slowed with delay_s)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rich.console import Console

from boundary.api.autoscale_policy import Policy, QueuePolicy
from boundary.api.cli import cli
from boundary.api.db import Database
from boundary.api.render.console import queues_table
from boundary.api.status import statuses
from boundary.workers.autoscale.controller import Controller, DryRun
from boundary.workers.autoscale.depth import discover_queues, read_depths
from boundary.workers.autoscale.local import LocalBackend
from boundary.workers.autoscale.state import queue_views, read_state
from boundary.workers.celery_app import SAMPLE_TASK, make_app
from tests.support.fleet import BOUNDARY, Fleet, assert_exactly, wait_until, write_experiment

ECHO = ["--engine", "echo", "--visibility-timeout", "30"]


class Autoscaler:
    """One `boundary autoscale run` process of a test; stopped (and its workers with it) at the end."""

    def __init__(self, f: Fleet, policy: str, *extra: str):
        self.fleet, self.path = f, f.logs / "policy.yaml"
        self.path.write_text(policy)
        self.log_path = f.logs / "autoscale.log"
        self.broker = redis.Redis.from_url(f.broker_url)
        self.seen: set[int] = set()
        self.process = subprocess.Popen(
            [BOUNDARY, "autoscale", "run", str(self.path), "--log-dir", str(f.logs / "workers"), *extra],
            env=f.env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def state(self) -> dict[str, dict]:
        state = read_state(self.broker)
        self.seen.update(w["pid"] for entry in state.values() for w in entry.get("workers", []))
        return state

    def workers(self, queue: str, kind: str = "running") -> list[int]:
        entry = self.state().get(queue) or {}
        return [w["pid"] for w in entry.get("workers", []) if w["state"] == kind]

    def counts(self, queue: str) -> tuple[int | None, int | None]:
        entry = self.state().get(queue) or {}
        return entry.get("current"), entry.get("desired")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        finally:
            for pid in self.seen:  # a test that failed half-way leaves nothing behind
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def autoscaler(fleet: Fleet) -> Iterator[list[Autoscaler]]:  # noqa: F811
    started: list[Autoscaler] = []
    yield started
    for a in started:
        a.stop()


def echo_policy(model: str, interval_s: float, cooldowns_s: tuple[float, float], delay_s: float, sample_backlog: int,
                grade_max: int, grade_backlog: int) -> str:
    """A policy of two queues: 0 to 3 echo sampling workers of ``model`` answering after ``delay_s``, and 1 to
    ``grade_max`` grading workers; ``cooldowns_s`` is (scale up, scale down)."""
    up_s, down_s = cooldowns_s
    sample_args = ECHO + ["-o", f"delay_s={delay_s}"]
    grade_args = '[--concurrency, "1", --visibility-timeout, "30"]'
    return f"""
interval_s: {interval_s}
scale_up_cooldown_s: {up_s}
scale_down_cooldown_s: {down_s}
queues:
  sample.{model}: {{min: 0, max: 3, target_backlog: {sample_backlog}, args: {sample_args}}}
  grade: {{min: 1, max: {grade_max}, target_backlog: {grade_backlog}, args: {grade_args}}}
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_depth_counts_waiting_messages_of_every_priority_and_reserved_ones(redis_url: str) -> None:
    app = make_app(redis_url, "sqlite://")
    client = redis.Redis.from_url(redis_url)
    for batch_id in range(5):
        app.send_task(SAMPLE_TASK, args=[batch_id], queue="sample.d")
    app.send_task(SAMPLE_TASK, args=[99], queue="sample.d", priority=5)  # a list of its own: sample.d\x06\x163
    app.send_task(SAMPLE_TASK, args=[7], queue="grade")
    assert client.exists("sample.d\x06\x163")
    depths = read_depths(client, ["sample.d", "grade", "sandbox"])
    assert [(d.waiting, d.reserved) for d in depths.values()] == [(6, 0), (1, 0), (0, 0)]
    with app.connection_for_read() as conn:  # a consumer takes two messages and acknowledges neither yet
        queue = conn.SimpleQueue("sample.d", no_ack=False)
        taken = [queue.get(timeout=5), queue.get(timeout=5)]
        assert client.hlen("unacked") == 2
        depth = read_depths(client, ["sample.d"])["sample.d"]
        assert (depth.waiting, depth.reserved, depth.total) == (4, 2, 6)
        assert discover_queues(client) == ["grade", "sample.d"]
        for message in taken:
            message.ack()
        queue.close()
    depth = read_depths(client, ["sample.d"])["sample.d"]
    assert (depth.waiting, depth.reserved) == (4, 0)
    app.close()


def test_a_broker_that_does_not_answer_is_waited_for_then_used_again(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    policy = Policy((QueuePolicy("grade", 1, 2, 20),), interval_s=0.5)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    backend = DryRun(LocalBackend({}, None))
    controller = Controller(policy, backend, dead, "redis://127.0.0.1:1/0")
    caplog.set_level("INFO", logger="boundary.autoscale")
    delays = [controller.tick() for _ in range(3)]
    assert delays == [0.5, 1.0, 2.0]
    assert controller.memory == {} and backend.counts == {}  # nothing decided without the broker
    assert "broker redis://127.0.0.1:1/0 does not answer" in caplog.text and "retrying in 2s (attempt 3)" in caplog.text
    controller.client = redis.Redis.from_url(redis_url)
    assert controller.tick() == 0.5
    assert "broker redis://127.0.0.1:1/0 answers again (after 3 failed attempts)" in caplog.text
    assert backend.counts == {"grade": 1}
    assert read_state(controller.client)["grade"]["desired"] == 1


def test_the_controller_process_waits_for_a_broker_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "autoscale.log"
    process = subprocess.Popen([BOUNDARY, "autoscale", "run", "--queue", "grade=1:2", "--interval", "0.2"],
                               env={**os.environ, "BOUNDARY_BROKER_URL": "redis://127.0.0.1:1/0"},
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log.read_text().count("does not answer") >= 2, 20, "two attempts to read the broker")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(20)
    text = log.read_text()
    assert code == 0, text
    assert "workers stay as they are; retrying in 0s (attempt 1)" in text and "(attempt 2)" in text
    assert "Traceback" not in text


def test_status_shows_current_and_desired_workers_per_queue(redis_url: str, sqlite_url: str) -> None:
    app = make_app(redis_url, "sqlite://")
    for batch_id in range(9):
        app.send_task(SAMPLE_TASK, args=[batch_id], queue="sample.s")
    app.close()
    policy = Policy((QueuePolicy("sample.s", 0, 2, 4), QueuePolicy("grade", 1, 3, 20)))
    controller = Controller(policy, DryRun(LocalBackend({}, None)), redis.Redis.from_url(redis_url), redis_url)
    controller.tick()
    ticked = time.time()
    runner = CliRunner()
    shown = runner.invoke(cli, ["status", "--once", "--database-url", sqlite_url, "--broker-url", redis_url])
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:]] for line in shown.output.splitlines()
            if line.startswith("│ sample.s") or line.startswith("│ grade")}
    assert rows["sample.s"][:4] == ["9", "0", "2", "2"]  # waiting, reserved, workers, desired
    assert "depth 9 / target 4 -> 3, held to max 2" in rows["sample.s"][5]
    assert rows["grade"][:4] == ["0", "0", "1", "1"]
    assert re.search(r"\ds ago by \S+:\d+", rows["grade"][6])
    listed = json.loads(runner.invoke(cli, ["autoscale", "show", "--json", "--broker-url", redis_url]).output)
    assert [(v["queue"], v["current"], v["desired"], v["depth"]) for v in listed] == [
        ("grade", 1, 1, 0), ("sample.s", 2, 2, 9)]
    without = runner.invoke(cli, ["status", "--once", "--database-url", sqlite_url], env={"BOUNDARY_BROKER_URL": ""})
    assert without.exit_code == 0 and "queues" not in without.output
    later = queue_views(controller.client, now=ticked + 3 * policy.interval_s + 10)  # the controller went silent
    assert all(v.stale and v.age_s > 3 * policy.interval_s for v in later)
    console = Console(width=250, record=True)
    console.print(queues_table(later))
    assert "stale, 40s ago by " in console.export_text()
    down = runner.invoke(cli, ["status", "--once", "--database-url", sqlite_url, "--broker-url", "redis://127.0.0.1:1/0"])
    assert down.exit_code == 0 and "broker redis://127.0.0.1:1/0 does not answer" in down.output
    controller.close()
    assert read_state(controller.client) == {}


def test_a_backlog_scales_up_at_once_and_the_drained_fleet_goes_back_to_its_floor(
        fleet: Fleet, autoscaler: list[Autoscaler], tmp_path: Path) -> None:  # noqa: F811
    a = Autoscaler(fleet, echo_policy("up-m", interval_s=0.3, cooldowns_s=(5, 1), delay_s=0.05, sample_backlog=2,
                                      grade_max=2, grade_backlog=8))
    autoscaler.append(a)
    wait_until(lambda: a.counts("grade") == (1, 1) and a.counts("sample.up-m") == (0, 0), 30,
               "the fleet at its floor\n" + a.log())
    exp = write_experiment(tmp_path / "up.yaml", "up", n=8, limit=12, batch_size=8,
                           models="  - {name: up-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    submitted = time.monotonic()
    wait_until(lambda: len(a.workers("sample.up-m")) == 3, 15, "three sampling workers\n" + a.log(), interval=0.05)
    # straight to max in one step (a tick in the middle of the publishing may need a second one, a cooldown later)
    assert time.monotonic() - submitted < 5 + 1
    assert re.search(r"sample.up-m: scale-up [0-2] -> 3 workers: depth \d+ / target 2 -> \d+", a.log()), a.log()
    samplers = a.workers("sample.up-m")
    assert all(alive(pid) for pid in samplers)
    wait_until(fleet.complete, 90, "the run to complete\n" + a.log() + fleet.log())
    wait_until(lambda: a.counts("sample.up-m") == (0, 0) and a.counts("grade") == (1, 1)
               and a.state()["sample.up-m"]["workers"] == [], 30, "the fleet back at its floor\n" + a.log())
    assert re.search(r"sample.up-m: scale-down \d -> 0 workers", a.log())
    assert len(a.workers("grade")) == 1 and not any(alive(pid) for pid in samplers)
    assert_exactly(fleet, n=8, runs=1, problems=12)
    assert a.stop() == 0
    assert read_state(a.broker) == {}  # a stopped controller withdraws its state
    assert not any(alive(pid) for pid in a.seen)


def test_a_scale_down_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
        fleet: Fleet, autoscaler: list[Autoscaler], tmp_path: Path) -> None:  # noqa: F811
    exp = write_experiment(tmp_path / "mid.yaml", "mid", n=8, limit=12, batch_size=8,
                           models="  - {name: mid-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    a = Autoscaler(fleet, echo_policy("mid-m", interval_s=0.2, cooldowns_s=(0, 0), delay_s=0.25, sample_backlog=4,
                                      grade_max=1, grade_backlog=20))
    autoscaler.append(a)
    db = Database.connect(fleet.database_url, auto_migrate=False)
    progress: list[tuple[int, int]] = []

    def complete() -> bool:
        with db.session() as session:
            (s,) = statuses(session, [1])
        progress.append((s.sampled, s.graded))
        a.state()
        return s.complete

    try:
        wait_until(complete, 120, "the run to complete\n" + a.log() + fleet.log(), interval=0.1)
    finally:
        db.dispose()
    assert all(later >= earlier for earlier, later in zip(progress, progress[1:])), "progress went backwards"
    assert progress[-1] == (96, 96)
    assert re.search(r"sample.mid-m: scale-down 3 -> 2 workers", a.log()), a.log()
    # a worker told to stop while sampling finished its batch (then exited); none was redelivered
    logs = [p.read_text() for p in (fleet.logs / "workers").glob("sample.mid-m-*.log")]
    drained = [text for text in logs if re.search(r"Warm shutdown.*\n(?:.*\n)*?.*batch \d+: drew 8 samples", text)]
    assert drained, "\n".join(logs)
    assert fleet.sql("SELECT kind, status, attempts, count(*) FROM batches GROUP BY 1, 2, 3 ORDER BY 1") == [
        ("grade", "done", 1, 12), ("sample", "done", 1, 12)]
    assert_exactly(fleet, n=8, runs=1, problems=12)


def test_a_crashed_worker_is_replaced(fleet: Fleet, autoscaler: list[Autoscaler], tmp_path: Path) -> None:  # noqa: F811
    exp = write_experiment(tmp_path / "crash.yaml", "crash", n=8, limit=8, batch_size=8,
                           models="  - {name: crash-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    a = Autoscaler(fleet, """
interval_s: 0.3
scale_down_cooldown_s: 60
queues:
  sample.crash-m: {min: 1, max: 1, args: [--engine, echo, -o, delay_s=0.1, --visibility-timeout, "3"]}
  grade: {min: 1, max: 1, args: [--concurrency, "1"]}
""")
    autoscaler.append(a)
    wait_until(lambda: len(a.workers("sample.crash-m")) == 1, 30, "a sampling worker\n" + a.log())
    (first,) = a.workers("sample.crash-m")
    wait_until(lambda: 0 < fleet.sql("SELECT count(*) FROM samples")[0][0], 60, "the first samples\n" + fleet.log())
    os.killpg(first, signal.SIGKILL)
    wait_until(lambda: a.workers("sample.crash-m") not in ([], [first]), 20, "a replacement\n" + a.log())
    (second,) = a.workers("sample.crash-m")
    assert second != first and alive(second)
    assert re.search(rf"sample.crash-m: worker pid {first} exited on its own after [\d.]+s \(killed by signal 9; "
                     r"last line of .*sample.crash-m-\d+.log: .*\); replacing it\n", a.log()), a.log()
    wait_until(fleet.complete, 90, "the run to complete after the crash\n" + a.log() + fleet.log())
    assert_exactly(fleet, n=8, runs=1, problems=8)


def test_celerys_own_autoscale_grows_and_shrinks_a_grading_pool(fleet: Fleet, tmp_path: Path) -> None:  # noqa: F811
    exp = write_experiment(tmp_path / "pool.yaml", "pool", n=4, limit=12, batch_size=4,
                           models="  - {name: pool-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    broker = redis.Redis.from_url(fleet.broker_url)
    sampler = fleet.start("sample", "--model", "pool-m", "--engine", "echo")
    wait_until(lambda: broker.llen("grade") == 12, 60, "every grading batch queued\n" + fleet.log())
    os.killpg(sampler.pid, signal.SIGTERM)
    sampler.wait(20)
    fleet.start("grade", "--autoscale", "3,1", env={"AUTOSCALE_KEEPALIVE": "1"})
    log = fleet.logs / "worker1.log"
    wait_until(fleet.complete, 60, "grading to complete\n" + fleet.log())
    wait_until(lambda: "Scaling down 2 processes" in log.read_text(), 30, "the pool to shrink\n" + log.read_text())
    assert "concurrency: {min=1, max=3} (prefork)" in log.read_text()
    grown = sum(int(n) for n in re.findall(r"Scaling up (\d+) processes", log.read_text()))
    assert grown == 2, log.read_text()  # from 1 process to 3: the prefetched messages waited for them
    assert_exactly(fleet, n=4, runs=1, problems=12)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_that_keeps_dying_at_start_is_restarted_with_a_growing_delay(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    dies = LocalBackend({"PATH": os.environ["PATH"]}, tmp_path,
                        program=[sys.executable, "-c", "print('no model'); exit(3)"], clock=clock)
    queue = QueuePolicy("sample.bad", 1, 1, 4)
    caplog.set_level("INFO", logger="boundary.autoscale")

    def exits() -> None:
        dies.scale(queue, 1)
        wait_until(lambda: dies._workers[0].process.poll() is not None, 10, "the worker to exit")

    exits()
    dies.scale(queue, 1)  # first crash: replaced at once
    assert ("exited on its own after 0.0s (exit 3; last line of" in caplog.text
            and "no model); replacing it\n" in caplog.text)
    wait_until(lambda: dies._workers[0].process.poll() is not None, 10, "the replacement to exit")
    dies.scale(queue, 1)  # second crash in a row: wait 5 s
    assert dies.running(queue) == 0 and "replacing it in 5s" in caplog.text
    clock.now += 5
    exits()
    clock.now += 1
    dies.scale(queue, 1)
    assert "replacing it in 10s" in caplog.text and dies.running(queue) == 0
    dies.close(wait_s=5)

    missing = LocalBackend({}, tmp_path, program=[str(tmp_path / "no-such-boundary")], clock=clock)
    missing.scale(QueuePolicy("grade", 2, 2, 20), 2)
    assert missing.running(QueuePolicy("grade", 2, 2, 20)) == 0
    assert caplog.text.count("grade: cannot start") == 1  # one error, then a long wait, not a crash
