"""Leases on batches, on SQLite and PostgreSQL: claiming under a lease, renewing, finishing,
taking back the batches of dead workers and finding batches whose message was lost; and the
reaper against a real Redis."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
from kombu.transport.redis import Channel
from sqlalchemy import select, update

from boundary.api.batch_state import (
    Holder,
    Lease,
    Queued,
    claim,
    finish,
    held_by,
    long_queued,
    mark_republished,
    plan_run,
    reap_expired,
    record_error,
    renew,
)
from boundary.api.benchmarks import LoadedBenchmark
from boundary.api.db import Database, schema
from boundary.api.db.session import make_engine
from boundary.api.errors import ConfigError
from boundary.api.models import ModelSpec
from boundary.api.runs import RunSpec, register
from boundary.api.types import Problem, SamplingConfig
from boundary.workers.broker import publish
from boundary.workers.celery_app import make_app
from boundary.workers.messages import batches_in_broker, restore
from boundary.workers.reaper import HOLD_KEY, REAPER_KEY, SCAN_KEY, Reaper

LEASE = Lease(duration_s=30, heartbeat_s=5)


def holder(owner: str, tag: str | None = None) -> Holder:
    return Holder(owner, tag or f"tag-{owner}", LEASE)


def batches(db: Database, problems: int = 4, per_batch: int = 1) -> list[Queued]:
    """A run of ``problems`` problems and n=2, planned in sampling batches of ``per_batch``."""
    bench = LoadedBenchmark("toy", "math", "test", tuple(
        Problem(key=str(i), question=f"q{i}", answer="1", record={}) for i in range(problems)))
    spec = RunSpec(ModelSpec(name="m", path="/models/m"), bench,
                   SamplingConfig(temperature=0.6, top_p=1.0, max_tokens=8, seed=0), "boxed", "echo", 2)
    with db.session() as s:
        run_id, _ = register(s, spec, bench.problems, lambda p: p.question)
        return plan_run(s, run_id, batch_samples=2 * per_batch)


def row(db: Database, batch_id: int) -> schema.Batch:
    with db.session() as s:
        batch = s.get(schema.Batch, batch_id)
        s.expunge(batch)
        return batch


def expire(db: Database, batch_id: int, seconds_ago: float = 1.0) -> None:
    with db.session() as s:
        s.execute(update(schema.Batch).where(schema.Batch.id == batch_id).values(
            lease_expires_at=schema.utcnow() - timedelta(seconds=seconds_ago)))


def age(db: Database, batch_id: int, seconds: float) -> None:
    with db.session() as s:
        s.execute(update(schema.Batch).where(schema.Batch.id == batch_id).values(
            updated_at=schema.utcnow() - timedelta(seconds=seconds)))


@pytest.mark.parametrize(("lease", "heartbeat", "message"), [
    (0, 5, "--lease must be a positive number of seconds, got 0"),
    (20, 0, "--heartbeat must be a positive number of seconds, got 0"),
    (-1, 5, "--lease must be a positive number of seconds, got -1"),
    (5, 5, "--lease (5s) must be longer than --heartbeat (5s)"),
    (3, 5, "--lease (3s) must be longer than --heartbeat (5s)"),
])
def test_a_lease_that_cannot_work_is_refused(lease: float, heartbeat: float, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Lease(lease, heartbeat)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_live_lease_keeps_the_batch_with_its_worker(database: Database) -> None:
    b = batches(database)[0].batch_id
    with database.session() as s:
        first = claim(s, b, 3, holder("a:1"))
    assert first is not None and first.attempts == 1
    taken = row(database, b)
    assert (taken.status, taken.lease_owner, taken.lease_tag) == ("running", "a:1", "tag-a:1")
    with database.session() as s:
        assert claim(s, b, 3, holder("b:2")) is None  # another message for it: dropped
        assert held_by(s, b)[0] == "a:1"
    assert row(database, b).attempts == 1  # a dropped message is not a delivery
    with database.session() as s:  # the message its holder took, come back: the holder let go
        again = claim(s, b, 3, Holder("b:2", "tag-a:1", LEASE))
    assert again is not None and again.attempts == 2 and row(database, b).lease_owner == "b:2"


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_finish(database: Database) -> None:
    b = batches(database)[0].batch_id
    with database.session() as s:
        assert claim(s, b, 3, holder("a:1")) is not None
    expire(database, b)
    with database.session() as s:
        assert held_by(s, b) is None
        assert claim(s, b, 3, holder("b:2")) is not None
    with database.session() as s:
        assert not renew(s, b, holder("a:1"))  # a, back from the dead, has lost it
        assert not finish(s, b, "a:1")
        assert not record_error(s, b, "late", final=True, owner="a:1")
    assert (row(database, b).status, row(database, b).lease_owner) == ("running", "b:2")
    with database.session() as s:
        before = row(database, b).lease_expires_at
        assert renew(s, b, holder("b:2"))
    assert row(database, b).lease_expires_at > before
    with database.session() as s:
        assert finish(s, b, "b:2")
        assert not finish(s, b, "b:2")  # done once: a second finish changes nothing
    done = row(database, b)
    assert (done.status, done.lease_owner, done.lease_expires_at) == ("done", None, None)


def test_reaping_queues_expired_batches_once_and_spares_live_ones(database: Database) -> None:
    a, b, c, _ = (q.batch_id for q in batches(database))
    with database.session() as s:
        for batch_id, owner in ((a, "a:1"), (b, "b:2"), (c, "c:3")):
            assert claim(s, batch_id, 3, holder(owner)) is not None
    expire(database, a)
    expire(database, c, seconds_ago=100)
    with database.session() as s:
        reaped = reap_expired(s)
    assert [(e.queued.batch_id, e.owner, e.tag) for e in reaped] == [(a, "a:1", "tag-a:1"), (c, "c:3", "tag-c:3")]
    for batch_id in (a, c):
        back = row(database, batch_id)
        # two workers holding different batches died: the fleet's trouble, not the batches'
        assert (back.status, back.lease_owner, back.attempts) == ("queued", None, 0)
        assert "stopped renewing its lease" in back.error and back.lease_lost_at is not None
    assert row(database, b).status == "running"
    with database.session() as s:
        assert reap_expired(s) == []  # taken back once
        # the old holder of a finishes after all: nobody else took it, so its outcome counts
        assert finish(s, a, "a:1")
    assert row(database, a).status == "done"


def test_a_worker_that_keeps_dying_is_still_bounded_by_max_attempts(database: Database) -> None:
    b = batches(database)[0].batch_id
    for attempt in range(2):
        with database.session() as s:
            assert claim(s, b, 2, holder(f"w:{attempt}")) is not None
        expire(database, b)
        with database.session() as s:
            assert [e.queued.batch_id for e in reap_expired(s)] == [b]
    with database.session() as s:
        assert claim(s, b, 2, holder("w:3")) is None
    failed = row(database, b)
    assert failed.status == "failed" and failed.error.startswith(
        "gave up after 2 deliveries that stored nothing: w:1 stopped renewing")


def test_a_delivery_that_stored_rows_before_it_died_does_not_use_up_the_batch(database: Database) -> None:
    """A worker killed from outside mid-way through keeps the batch's attempts; one that dies
    again before storing anything more counts. (Wrong on purpose, counting every death: the
    second claim below would give the batch up.)"""
    b = batches(database)[0].batch_id
    with database.session() as s:
        run_id, (problem,) = s.execute(select(schema.Batch.run_id, schema.Batch.problem_ids)
                                       .where(schema.Batch.id == b)).one()
    for delivery, stores in enumerate((True, True, False)):
        with database.session() as s:
            taken = claim(s, b, 1, holder(f"w:{delivery}"))
            assert taken is not None and taken.attempts == 1, delivery
            if stores:  # the worker draws one sample, then is killed
                s.add(schema.Sample(run_id=run_id, problem_id=problem, sample_index=delivery, text="x", num_tokens=1))
        expire(database, b)
        with database.session() as s:
            assert len(reap_expired(s)) == 1
    with database.session() as s:
        assert claim(s, b, 1, holder("w:3")) is None  # the third death stored nothing: given up
    assert (row(database, b).status, row(database, b).attempts, row(database, b).progress) == ("failed", 2, 2)


def test_a_death_counts_against_the_batch_only_when_no_other_batch_lost_its_worker(database: Database) -> None:
    """Workers dying while holding different batches within the blame window (kills, a node
    going down) give the attempts back; a batch that alone keeps losing its workers keeps them
    counted. (Wrong on purpose, never giving back: the kills below would give both up.)"""
    a, b, c, _ = (q.batch_id for q in batches(database))
    for round_ in range(3):  # a and b lose their workers in turn, three times
        for batch_id in (a, b):
            with database.session() as s:
                assert claim(s, batch_id, 2, holder(f"w{batch_id}:{round_}")) is not None
            expire(database, batch_id)
            with database.session() as s:
                assert [e.queued.batch_id for e in reap_expired(s, blame_window_s=60)] == [batch_id]
    # a's first death, alone then, counted; every later one came with b's, and b's with a's
    assert row(database, a).attempts == 1 and row(database, b).attempts == 0
    with database.session() as s:  # c loses its worker long after the others: its own fault
        s.execute(update(schema.Batch).values(lease_lost_at=schema.utcnow() - timedelta(seconds=120)))
        assert claim(s, c, 1, holder("wc")) is not None
    expire(database, c)
    with database.session() as s:
        assert len(reap_expired(s, blame_window_s=60)) == 1
    assert row(database, c).attempts == 1
    with database.session() as s:
        assert claim(s, c, 1, holder("wc2")) is None
    assert row(database, c).status == "failed"


def test_long_queued_batches_are_republished_by_one_reaper(database: Database) -> None:
    a, b, c, _ = (q.batch_id for q in batches(database))
    age(database, a, 60)
    age(database, b, 60)
    with database.session() as s:
        assert claim(s, b, 3, holder("x:1")) is not None  # running: not a lost message
    with database.session() as s:
        assert [q.batch_id for q in long_queued(s, 30)] == [a]
        assert mark_republished(s, [a, c], 30) == [a]  # c is fresh
        assert mark_republished(s, [a], 30) == []  # its clock restarted: the other reaper gets nothing
        assert long_queued(s, 30) == []


def broker_entries(client: redis.Redis, queue: str) -> tuple[list[dict], dict[bytes, list]]:
    waiting = [json.loads(m) for m in client.lrange(queue, 0, -1)]
    unacked = {k: json.loads(v) for k, v in client.hgetall(Channel.unacked_key).items()}
    return waiting, unacked


def take_like_kombu(client: redis.Redis, queue: str, ago_s: float = 0.0) -> str:
    """What a worker's consumer does with the next message: pop it, hold it unacknowledged
    (taken ``ago_s`` seconds ago)."""
    message = json.loads(client.rpop(queue))
    tag = message["properties"]["delivery_tag"]
    client.zadd(Channel.unacked_index_key, {tag: time.time() - ago_s})
    client.hset(Channel.unacked_key, tag, json.dumps([message, queue, queue]))
    return tag


def test_the_broker_s_messages_name_their_batches_and_a_held_one_can_be_given_back(redis_url: str) -> None:
    app = make_app(redis_url, "sqlite://")
    publish(app, [Queued(7, "sample", "sample.m"), Queued(8, "sample", "sample.m"), Queued(9, "grade", "grade")])
    client = redis.Redis.from_url(redis_url)
    assert batches_in_broker(client, ["sample.m"]) == {7, 8}
    tag = take_like_kombu(client, "sample.m")  # 7, the oldest
    assert batches_in_broker(client, ["sample.m", "grade"]) == {7, 8, 9}  # held ones count
    assert restore(client, tag, "sample.m")
    waiting, unacked = broker_entries(client, "sample.m")
    assert unacked == {} and client.zcard(Channel.unacked_index_key) == 0
    assert waiting[-1]["properties"]["delivery_tag"] == tag  # first in line again
    assert waiting[-1]["headers"]["redelivered"] is True
    assert not restore(client, tag, "sample.m")  # nobody holds it now


def test_the_reaper_gives_back_a_dead_worker_s_message_and_republishes_lost_ones(database: Database,
                                                                                   redis_url: str) -> None:
    queued = batches(database)
    a, b, c, d = (q.batch_id for q in queued)
    app = make_app(redis_url, "sqlite://")
    publish(app, queued)
    client = redis.Redis.from_url(redis_url)
    queue = queued[0].queue
    tag = take_like_kombu(client, queue)  # the worker that takes a dies holding it
    with database.session() as s:
        assert claim(s, a, 3, Holder("dead:1", tag, LEASE)) is not None
    take_like_kombu(client, queue)  # b: held by a live worker, whose lease is renewed
    with database.session() as s:
        assert claim(s, b, 3, holder("live:2")) is not None
    client.lrem(queue, 0, client.lindex(queue, -1))  # c's message is lost
    age(database, c, 120)
    age(database, d, 120)  # d waits in its queue, legitimately
    expire(database, a)
    published: list[Queued] = []
    reaper = Reaper(database, client, published.extend, Lease(30, 5), "reaper:1")
    reaped = reaper.tick()
    assert [e.queued.batch_id for e in reaped.expired] == [a] and reaped.restored == 1
    assert [q.batch_id for q in reaped.lost] == [c] and published == [Queued(c, "sample", queue)]
    assert batches_in_broker(client, [queue]) == {a, b, d}  # a back in line, b still held
    assert client.hlen(Channel.unacked_key) == 1
    assert Reaper(database, client, published.extend, Lease(30, 5), "reaper:2").tick() is None  # one per interval
    client.delete(REAPER_KEY)
    again = reaper.tick()
    assert again.expired == [] and again.lost == []  # nothing to do twice
    with database.session() as s:
        states = dict(s.execute(select(schema.Batch.id, schema.Batch.status)).all())
    assert states == {a: "queued", b: "running", c: "queued", d: "queued"}


def test_after_a_database_outage_no_reaper_takes_a_lease_back_for_one_lease(database: Database,
                                                                           redis_url: str) -> None:
    """A reaper that cannot reach the database holds every reaper of the fleet off for one lease
    period: workers cut off from it too get time to renew once it is back."""
    (queued,) = batches(database, problems=1)
    with database.session() as s:
        assert claim(s, queued.batch_id, 3, holder("cut-off:1")) is not None
    expire(database, queued.batch_id)
    client = redis.Redis.from_url(redis_url)
    down = Database(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))  # nothing listens there
    assert Reaper(down, client, lambda _: None, Lease(30, 5), "reaper:1").tick() is None
    assert 25_000 < client.pttl(HOLD_KEY) <= 30_000
    client.delete(REAPER_KEY)
    other = Reaper(database, client, lambda _: None, Lease(30, 5), "reaper:2")
    assert other.tick().expired == []  # held off, though it reaches the database
    client.delete(REAPER_KEY, HOLD_KEY)
    assert [e.queued.batch_id for e in other.tick().expired] == [queued.batch_id]


def test_a_slow_look_for_lost_messages_spaces_out_the_next_ones(database: Database, redis_url: str) -> None:
    """Reading a long backlog costs a reaper time: after a look that took 1 s, no reaper looks
    for 20 s (SCAN_DUTY). (Wrong on purpose, looking every interval: the lost batch below would
    be republished at once.)"""
    first, second = batches(database, problems=2)
    age(database, first.batch_id, 120)
    client = redis.Redis.from_url(redis_url)
    ticks = iter(range(100))
    slow = Reaper(database, client, lambda _: None, Lease(30, 5), "reaper:1", clock=lambda: float(next(ticks)))
    assert slow.tick().lost == [first]  # its message was never published: lost
    assert 19_000 < client.pttl(SCAN_KEY) <= 20_000
    client.delete(REAPER_KEY)
    age(database, second.batch_id, 120)
    assert Reaper(database, client, lambda _: None, Lease(30, 5), "reaper:2").tick().lost == []
    client.delete(REAPER_KEY, SCAN_KEY)
    assert Reaper(database, client, lambda _: None, Lease(30, 5), "reaper:2").tick().lost == [second]


def test_a_message_held_by_a_worker_that_died_before_claiming_is_given_back(database: Database,
                                                                          redis_url: str) -> None:
    """A queued batch whose only message a worker took long ago and never claimed (it died
    between taking and claiming, or while waiting out a retry's countdown) is given back to its
    queue; one taken lately is left to its worker. (Wrong on purpose, counting every held
    message as present: the dead worker's batch would wait for the visibility timeout.)"""
    stale, fresh = batches(database, problems=2)
    publish(make_app(redis_url, "sqlite://"), [stale, fresh])
    client = redis.Redis.from_url(redis_url)
    dead = take_like_kombu(client, stale.queue, ago_s=1000)
    alive = take_like_kombu(client, fresh.queue, ago_s=1)
    age(database, stale.batch_id, 120)
    age(database, fresh.batch_id, 120)
    published: list[Queued] = []
    reaped = Reaper(database, client, published.extend, Lease(30, 5), "reaper:1").tick()
    assert reaped.lost == [stale] and published == []  # given back, not published anew
    waiting, unacked = broker_entries(client, stale.queue)
    assert list(unacked) == [alive.encode()]
    assert [m["properties"]["delivery_tag"] for m in waiting] == [dead]
