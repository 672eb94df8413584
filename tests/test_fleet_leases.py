"""The fleet heals itself, for real (Redis, PostgreSQL, `boundary worker` processes): a worker
killed or frozen mid-batch gives its batch back when its lease runs out, and a flushed broker
loses nothing, with no `boundary resume` and a visibility timeout of hours.

Leases here are 2 s, renewed every 0.5 s: the bound on a dead worker's batch is the lease plus
one reaping interval. The engine is echo (instant text, with a delay per sample)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from kombu.transport.redis import Channel

from tests.support.fleet import BOUNDARY, Fleet, assert_exactly, wait_until, write_experiment

LEASE = ("--lease", "2", "--heartbeat", "0.5")
HOURS = 10 * 3600.0
"""The visibility timeout: without leases, a dead worker's batch would wait this long."""


def one_model(name: str) -> str:
    return f"  - {{name: {name}, model: smollm2-135m, role: base, engine: echo}}\n"


def sampler(model: str, delay_s: float) -> tuple[str, ...]:
    return ("sample", "--model", model, "--engine", "echo", "-o", f"delay_s={delay_s}", *LEASE)


def held_sample_batch(fleet: Fleet, written: bool = False) -> tuple[int, str, str | None] | None:
    """A sampling batch a worker holds (and, if ``written``, has written samples of, which
    takes WRITE_AFTER_S): (id, owner, tag)."""
    rows = fleet.sql(
        "SELECT b.id, b.lease_owner, b.lease_tag FROM batches b WHERE b.kind = 'sample' AND b.status = 'running' "
        + ("AND EXISTS (SELECT 1 FROM samples s WHERE s.run_id = b.run_id AND s.problem_id IN "
           "(SELECT value::int FROM json_array_elements_text(b.problem_ids))) " if written else "")
        + "ORDER BY b.id LIMIT 1"
    )
    return rows[0] if rows else None


def wait_for_held(fleet: Fleet, written: bool = False) -> tuple[int, str, str | None]:
    found: list = []
    wait_until(lambda: found.append(held_sample_batch(fleet, written)) or found[-1] is not None, 60,
               "a batch held mid-way")
    return found[-1]


def pid_of(owner: str) -> int:
    return int(owner.rsplit(":", 1)[1])


def test_a_sampler_killed_mid_batch_gives_its_batch_back_within_the_lease(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "kill.yaml", "kill", n=8, limit=6, batch_size=16, models=one_model("kill-m"))
    assert fleet.cli("submit", str(exp)).returncode == 0
    for _ in range(2):
        fleet.start(*sampler("kill-m", 0.15), visibility_timeout_s=HOURS)
    fleet.start("grade", "--concurrency", "1", *LEASE, visibility_timeout_s=HOURS)
    batch_id, owner, tag = wait_for_held(fleet)
    time.sleep(0.5)
    assert tag  # the lease names the message it works from
    victim = next(p for p in fleet.processes if p.pid == pid_of(owner))
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    wait_until(fleet.complete, 60, "the run to complete after the kill, with no resume\n" + fleet.log())
    took = time.monotonic() - killed_at
    assert_exactly(fleet, n=8, runs=1, problems=6)
    # 2 s of lease + 0.5 s reaping interval + the batches left (<= 3 of 16 samples at 0.15 s)
    assert took < 20, f"{took:.1f}s"
    assert fleet.sql(f"SELECT status, attempts FROM batches WHERE id = {batch_id}") == [("done", 2)]
    logs = fleet.log()
    assert "whose worker stopped renewing its lease" in logs and "1 message(s) given back to their queue" in logs
    # the dead worker's message went back to its queue: nothing is left unacknowledged for hours
    assert redis.Redis.from_url(fleet.broker_url).hlen(Channel.unacked_key) == 0


def test_a_flushed_broker_loses_nothing_without_resume(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "flush.yaml", "flush", n=8, limit=8, batch_size=8)
    assert fleet.cli("submit", str(exp)).returncode == 0
    fleet.start(*sampler("flush-base", 0.05), visibility_timeout_s=HOURS)  # 0.4 s a batch, 8 a run
    fleet.start(*sampler("flush-rl", 0.05), visibility_timeout_s=HOURS)
    fleet.start("grade", "--concurrency", "1", *LEASE, visibility_timeout_s=HOURS)
    wait_until(lambda: fleet.sql("SELECT count(*) FROM samples")[0][0] >= 8, 60, "some samples")
    redis.Redis.from_url(fleet.broker_url).flushdb()  # every message, waiting or held, is gone
    flushed_at = time.monotonic()
    lost = fleet.sql("SELECT count(*) FROM batches WHERE status = 'queued'")[0][0]
    assert lost > 0  # batches whose message was waiting in a queue
    assert not fleet.complete()
    wait_until(fleet.complete, 90, "the runs to complete after the flush, with no resume\n" + fleet.log())
    assert time.monotonic() - flushed_at < 45
    assert_exactly(fleet, n=8, runs=2, problems=8)
    assert "(the broker lost its messages)" in fleet.log()
    assert fleet.sql("SELECT DISTINCT status FROM batches") == [("done",)]


def test_a_frozen_worker_loses_its_lease_and_its_late_writes_change_nothing(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "frozen.yaml", "frozen", n=8, limit=4, batch_size=16,
                           models=one_model("frozen-m"))
    assert fleet.cli("submit", str(exp)).returncode == 0
    frozen = fleet.start(*sampler("frozen-m", 0.4), visibility_timeout_s=HOURS)  # 6.4 s a batch
    batch_id, owner, _ = wait_for_held(fleet, written=True)
    assert pid_of(owner) == frozen.pid
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        time.sleep(3)  # past its 2 s lease; no live worker is left to reap it
        (run,) = fleet.status()
        assert run["state"] == "stalled" and run["batches"]["sample.frozen-m"]["held_by_dead"] == 1, run
        assert run["batches"]["sample.frozen-m"]["held"] == 0
        shown = fleet.cli("status", "--once")
        assert "held by dead workers" in shown.stdout and "stalled" in shown.stdout, shown.stdout

        fleet.start(*sampler("frozen-m", 0.0), visibility_timeout_s=HOURS)
        fleet.start("grade", "--concurrency", "1", *LEASE, visibility_timeout_s=HOURS)
        wait_until(fleet.complete, 60, "the run to complete while the first worker is frozen\n" + fleet.log())
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    wait_until(lambda: "another worker took the batch over meanwhile" in fleet.worker_log(0), 60,
               "the thawed worker to finish its stale delivery\n" + fleet.worker_log(0))
    assert "this worker's lease ran out" in fleet.worker_log(0)
    assert frozen.poll() is None  # it lives on and serves again
    assert_exactly(fleet, n=8, runs=1, problems=4)
    # one delivery in a row that stored nothing: the frozen one had stored samples before it froze
    assert fleet.sql(f"SELECT status, attempts FROM batches WHERE id = {batch_id}") == [("done", 1)]
    # its late finish made no second grading batch: one per sampling batch
    assert fleet.sql("SELECT kind, count(*) FROM batches GROUP BY kind ORDER BY kind") == [("grade", 2), ("sample", 2)]
    (run,) = fleet.status()
    assert run["state"] == "complete" and run["batches"] == {}


def test_the_autoscaler_reaps_when_no_worker_is_left(fleet: Fleet, tmp_path: Path) -> None:
    """The only worker dies; the autoscaler, which runs no worker yet, takes the batch back on
    its first look, and the workers it then starts finish the run."""
    exp = write_experiment(tmp_path / "alone.yaml", "alone", n=8, limit=4, batch_size=16, models=one_model("alone-m"))
    assert fleet.cli("submit", str(exp)).returncode == 0
    only = fleet.start(*sampler("alone-m", 0.4), visibility_timeout_s=HOURS)
    batch_id = wait_for_held(fleet)[0]
    os.killpg(only.pid, signal.SIGKILL)
    only.wait()
    time.sleep(2.5)  # its lease has run out
    policy = tmp_path / "policy.yaml"
    lease = f"--lease, '2', --heartbeat, '0.5', --visibility-timeout, '{HOURS:g}'"
    policy.write_text(f"interval_s: 0.5\nqueues:\n"
                      f"  sample.alone-m: {{min: 0, max: 1, args: [--engine, echo, {lease}]}}\n"
                      f"  grade: {{min: 0, max: 1, args: [--concurrency, '1', {lease}]}}\n")
    controller = subprocess.Popen(
        [BOUNDARY, "autoscale", "run", str(policy), "--log-dir", str(tmp_path / "scaled"), *LEASE],
        env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until(fleet.complete, 90, "the autoscaled workers to finish the run")
        finished = True
    except AssertionError:
        finished = False
    os.killpg(controller.pid, signal.SIGTERM)
    output = controller.communicate(timeout=60)[0]
    scaled = "\n".join(p.read_text()[-3000:] for p in sorted((tmp_path / "scaled").glob("*")))
    assert finished, output + scaled
    first = output.split("scale up", 1)[0]  # before it started any worker
    assert "queued again 1 batch(es)" in first and "1 message(s) given back" in first, output
    assert_exactly(fleet, n=8, runs=1, problems=4)
    assert fleet.sql(f"SELECT status, attempts FROM batches WHERE id = {batch_id}") == [("done", 2)]


def test_a_lease_that_cannot_work_stops_the_worker_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "BOUNDARY_BROKER_URL": "redis://127.0.0.1:1/0",
           "BOUNDARY_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    for args, message in ((("--lease", "0"), "--lease must be a positive number of seconds, got 0"),
                          (("--lease", "3", "--heartbeat", "5"), "--lease (3s) must be longer than --heartbeat (5s)")):
        done = subprocess.run([BOUNDARY, "worker", "grade", "--concurrency", "1", *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
