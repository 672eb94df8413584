"""`boundary resume` plans the missing batches with the batch size of the experiment a run was
submitted with (real PostgreSQL and Redis, no worker running: the batches are only planned)."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from boundary.api import defaults
from boundary.api.db import Database
from boundary.api.experiments import parse, resolve_all, run_batch_size
from boundary.api.runs import register
from tests.support.fleet import Fleet, write_experiment

SHARED_MODELS = (
    "  - {name: keep-base, model: smollm2-135m, role: base, engine: echo, template: boxed}\n"
    "  - {name: keep-rl, model: smollm2-135m, role: rlvr, engine: echo, template: qwen-boxed}\n"
)


def submit_then_lose_the_queue(fleet: Fleet, exp: Path) -> dict:
    submitted = fleet.cli("submit", str(exp), "--json")
    assert submitted.returncode == 0, submitted.stderr
    redis.Redis.from_url(fleet.broker_url).flushdb()  # every message is lost; no worker ever ran
    return json.loads(submitted.stdout)


def last_batch_id(fleet: Fleet) -> int:
    return fleet.sql("SELECT coalesce(max(id), 0) FROM batches")[0][0]


def planned_since(fleet: Fleet, after: int) -> list[tuple[int, str, int]]:
    """(run, kind, problems) of every batch planned after batch ``after``."""
    return fleet.sql(
        f"SELECT run_id, kind, json_array_length(problem_ids) FROM batches WHERE id > {after} ORDER BY id"
    )


def test_resume_plans_with_the_experiments_batch_size(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "keep.yaml", "keep", n=8, limit=8, batch_size=16)  # 2 problems a batch
    submitted = submit_then_lose_the_queue(fleet, exp)
    assert len(submitted["runs"]) == 2

    before = last_batch_id(fleet)
    resumed = fleet.cli("resume", "keep")
    assert resumed.returncode == 0, resumed.stderr
    assert "queued 8 sampling and 0 grading batches for 2 run(s)" in resumed.stdout
    planned = planned_since(fleet, before)
    assert [p[2] for p in planned] == [2] * 8, planned
    assert {p[1] for p in planned} == {"sample"}

    before = last_batch_id(fleet)
    explicit = fleet.cli("resume", "keep", "--batch-size", "32")  # an explicit size still overrides
    assert explicit.returncode == 0, explicit.stderr
    planned = planned_since(fleet, before)
    assert [p[2] for p in planned] == [4] * 4, planned


def test_resume_by_run_id_takes_the_newest_experiment_holding_the_run(fleet: Fleet, tmp_path: Path) -> None:
    first = write_experiment(tmp_path / "first.yaml", "first", n=8, limit=8, batch_size=16, models=SHARED_MODELS)
    run_ids = submit_then_lose_the_queue(fleet, first)["runs"]

    before = last_batch_id(fleet)
    resumed = fleet.cli("resume", str(run_ids[0]))
    assert resumed.returncode == 0, resumed.stderr
    assert planned_since(fleet, before) == [(run_ids[0], "sample", 2)] * 4

    # the same runs, submitted again in a newer experiment with 4 problems a batch: that one wins
    second = write_experiment(tmp_path / "second.yaml", "second", n=8, limit=8, batch_size=32, models=SHARED_MODELS)
    assert submit_then_lose_the_queue(fleet, second)["runs"] == run_ids
    before = last_batch_id(fleet)
    resumed = fleet.cli("resume", str(run_ids[1]))
    assert resumed.returncode == 0, resumed.stderr
    assert planned_since(fleet, before) == [(run_ids[1], "sample", 4)] * 2


def test_a_run_in_no_experiment_is_planned_with_the_default_batch_size(postgres_url: str, tmp_path: Path) -> None:
    experiment = parse({"name": "loose", "batch_size": 16, "benchmarks": [{"name": "arith", "limit": 2}],
                        "models": [{"model": "smollm2-135m", "engine": "echo"}]})
    (spec, problems), = resolve_all(experiment, None)
    with Database.opened(postgres_url, auto_migrate=True) as db, db.session() as session:
        run_id, _ = register(session, spec, problems, lambda p: None)  # registered alone, not as an experiment
        assert run_batch_size(session, run_id) == defaults.BATCH_SAMPLES
