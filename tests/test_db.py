"""Schema and migrations on real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from boundary.api.db import Database, schema
from boundary.api.db.migrate import current_revision, downgrade, head_revision
from boundary.api.db.session import make_engine
from boundary.api.db.upsert import insert_ignore
from boundary.api.errors import ConfigError, DatabaseError


def test_migrations_build_exactly_the_models_schema(database: Database) -> None:
    assert current_revision(database.engine) == head_revision()
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(database: Database) -> None:
    downgrade(database.engine, "base")
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    database.upgrade()
    assert {"models", "benchmarks", "problems", "runs", "run_problems", "samples", "verdicts"} <= set(
        inspect(database.engine).get_table_names()
    )


def _model_benchmark_run(session) -> schema.Run:
    model = schema.Model(name="m", path="p", role="base")
    bench = schema.Benchmark(name="b", version=1, kind="math", source="s", content_hash="h", num_problems=1)
    session.add_all([model, bench])
    session.flush()
    problem = schema.Problem(benchmark_id=bench.id, position=0, key="q1", question="?", answer="1", record={},
                             content_hash="x")
    run = schema.Run(
        model_id=model.id, benchmark_id=bench.id, temperature=0.6, top_p=0.95, max_tokens=8, n=2, seed=0,
        prompt_template="boxed", engine="vllm", engine_options={},
    )
    session.add_all([problem, run])
    session.flush()
    return run


def test_samples_are_unique_on_run_problem_index_and_upserts_are_idempotent(database: Database) -> None:
    with database.session() as session:
        run = _model_benchmark_run(session)
        problem_id = session.query(schema.Problem.id).scalar()
        row = {"run_id": run.id, "problem_id": problem_id, "sample_index": 0, "text": "a", "num_tokens": 1,
               "finish_reason": "stop", "cumulative_logprob": -1.0, "created_at": schema.utcnow()}
        insert_ignore(session, schema.Sample, [row], ["run_id", "problem_id", "sample_index"])
        insert_ignore(session, schema.Sample, [{**row, "text": "b"}, {**row, "sample_index": 1}],
                      ["run_id", "problem_id", "sample_index"])
    with database.session() as session:
        texts = sorted((s.sample_index, s.text) for s in session.query(schema.Sample))
    assert texts == [(0, "a"), (1, "a")]  # the second write of index 0 changed nothing
    with pytest.raises(IntegrityError):
        with database.session() as session:
            session.add(schema.Sample(run_id=run.id, problem_id=problem_id, sample_index=0, text="c", num_tokens=1))


def test_constraints_reject_bad_rows(database: Database) -> None:
    with pytest.raises(IntegrityError):
        with database.session() as session:
            session.add(schema.Model(name="x", path="p", role="wizard"))
    with pytest.raises(IntegrityError):
        with database.session() as session:
            run = _model_benchmark_run(session)
            run.top_p = 1.5


def test_unreachable_database_is_one_line() -> None:
    with pytest.raises(DatabaseError) as info:
        Database.connect("postgresql+psycopg://nobody@127.0.0.1:1/none")
    message = str(info.value)
    assert message.startswith("cannot connect to database postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert "\n" not in message


def test_password_is_hidden_in_errors() -> None:
    with pytest.raises(DatabaseError) as info:
        Database.connect("postgresql+psycopg://user:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("mysql://x@localhost/db", ConfigError, "unsupported database 'mysql'"),
        ("not a url", ConfigError, "invalid database URL"),
        ("sqlite:////no/such/folder/x.db", DatabaseError, "folder /no/such/folder does not exist"),
    ],
)
def test_bad_urls(url: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make_engine(url) if error is ConfigError else Database.connect(url)


def test_postgres_must_be_migrated_first(postgres_url: str) -> None:
    with pytest.raises(DatabaseError, match="run `boundary db upgrade`"):
        Database.connect(postgres_url)
    Database.connect(postgres_url, auto_migrate=True).dispose()
    Database.connect(postgres_url).dispose()  # now at head: no error


def test_bulk_upserts_take_the_copy_path_and_keep_json(database: Database) -> None:
    """Large writes (COPY into a staging table on PostgreSQL) ignore duplicates and keep JSON."""
    from boundary.api.db.upsert import COPY_FROM_ROWS

    count = COPY_FROM_ROWS * 2
    with database.session() as session:
        run = _model_benchmark_run(session)
        problem_id = session.query(schema.Problem.id).scalar()
        now = schema.utcnow()
        samples = [{"run_id": run.id, "problem_id": problem_id, "sample_index": i, "text": f"t{i}\tx\n",
                    "num_tokens": i, "finish_reason": "stop", "cumulative_logprob": None, "created_at": now}
                   for i in range(count)]
        insert_ignore(session, schema.Sample, samples, ["run_id", "problem_id", "sample_index"])
        insert_ignore(session, schema.Sample, [{**r, "text": "changed"} for r in samples],
                      ["run_id", "problem_id", "sample_index"])
    with database.session() as session:
        ids = [sid for (sid,) in session.query(schema.Sample.id).order_by(schema.Sample.sample_index)]
        verdicts = [{"sample_id": sid, "run_id": run.id, "problem_id": problem_id, "correct": i % 2 == 0,
                     "extracted_answer": None, "grader": "g", "grader_version": "1", "error": None, "duration_s": 0.1,
                     "details": {"tests": [i, "ok"]} if i % 3 else None, "created_at": now}
                    for i, sid in enumerate(ids)]
        insert_ignore(session, schema.Verdict, verdicts, ["sample_id"])
        insert_ignore(session, schema.Verdict, verdicts[:10], ["sample_id"])
    with database.session() as session:
        texts = [t for (t,) in session.query(schema.Sample.text).order_by(schema.Sample.sample_index)]
        assert texts == [f"t{i}\tx\n" for i in range(count)]
        details = [d for (d,) in session.query(schema.Verdict.details).join(schema.Sample)
                   .order_by(schema.Sample.sample_index)]
        assert details == [{"tests": [i, "ok"]} if i % 3 else None for i in range(count)]
        assert session.query(schema.Verdict).count() == count
