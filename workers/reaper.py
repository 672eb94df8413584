"""Reaping: what keeps a fleet going without a person. Every heartbeat interval, one live
process of the fleet (any worker, or the autoscaler; a key in the broker lets one act per
interval) queues again the batches whose lease ran out, giving the dead worker's message back
to its queue or publishing a new one, and publishes again the batches the database says are
queued but that no queue holds (a flushed broker, or one restarted without persistence).
See docs/fleet.md, "Leases"."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
from sqlalchemy import select

from boundary.api import defaults
from boundary.api.batch_state import Expired, Lease, Queued, long_queued, mark_republished, reap_expired
from boundary.api.db import Database
from boundary.api.db.retry import is_transient
from boundary.workers.messages import broker_contents, restore

log = logging.getLogger("boundary.reaper")

REAPER_KEY = "boundary.reaper"
"""The broker key a reaper sets (for one interval) before it acts: one reaper per interval."""

SCAN_KEY = "boundary.reaper.scan"
"""The broker key a reaper sets after a slow look for lost messages (a long backlog to read):
while it is there, no reaper looks again, so that looking takes at most 1/SCAN_DUTY of the
time (50,000 waiting messages take about 0.6 s to read)."""

SCAN_DUTY = 20

HOLD_KEY = "boundary.reaper.hold"
"""The broker key a reaper sets (for one lease period) when it cannot reach the database: while
it is there, no reaper of the fleet takes a lease back, so that live workers, cut off from the
database too, get one lease period after it returns to renew theirs."""


@dataclass
class Reaped:
    """What one look found: batches taken back from dead workers (``restored`` of them by
    giving their message back, the rest published anew), and batches whose message was lost."""

    expired: list[Expired] = field(default_factory=list)
    restored: int = 0
    lost: list[Queued] = field(default_factory=list)


def _ids(batches: Sequence[Queued]) -> str:
    return ", ".join(str(q.batch_id) for q in batches[:10]) + (" ..." if len(batches) > 10 else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


@dataclass
class Reaper:
    db: Database
    client: redis.Redis
    publish: Callable[[Sequence[Queued]], None]
    lease: Lease
    identity: str
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    """The time a broker records when a worker takes a message (Unix seconds)."""
    _database_down: bool = False

    def tick(self) -> Reaped | None:
        """One look, if no other reaper of the fleet took this interval; None when it did, or
        when the broker or the database does not answer (the next look tries again)."""
        try:
            if not self.client.set(REAPER_KEY, self.identity, nx=True, px=max(1, int(self.lease.heartbeat_s * 1000))):
                return None
        except redis.RedisError as exc:
            log.debug("reaper: broker does not answer (%s)", _first_line(exc))
            return None
        try:
            return self._look()
        except redis.RedisError as exc:
            log.warning("reaper: broker does not answer (%s); looking again in %gs", _first_line(exc),
                        self.lease.heartbeat_s)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if not self._database_down:
                log.warning("reaper: database unavailable (%s); no lease is taken back until %gs after it returns",
                            _first_line(exc), self.lease.duration_s)
            self._database_down = True
            try:
                self.client.set(HOLD_KEY, self.identity, px=max(1, int(self.lease.duration_s * 1000)))
            except redis.RedisError:
                pass
        return None

    def _look(self) -> Reaped:
        reaped = Reaped()
        held_off = bool(self.client.exists(HOLD_KEY))
        with self.db.session() as session:
            session.execute(select(1))  # the database answers (a session connects only when used)
            if self._database_down:
                log.warning("reaper: the database answers again")
                self._database_down = False
            if not held_off:
                reaped.expired = reap_expired(session, blame_window_s=3 * self.lease.duration_s)
        if reaped.expired:
            fresh = []
            for e in reaped.expired:
                if e.tag and restore(self.client, e.tag, e.queued.queue):
                    reaped.restored += 1
                else:
                    fresh.append(e.queued)
            self.publish(fresh)
            owners = sorted({e.owner or "?" for e in reaped.expired})
            log.warning("reaper: queued again %s batch(es) (%s) whose worker stopped renewing its lease (%s): "
                        "%s message(s) given back to their queue, %s published anew", len(reaped.expired),
                        ", ".join(str(e.queued.batch_id) for e in reaped.expired[:10]), ", ".join(owners[:5]),
                        reaped.restored, len(fresh))
        reaped.lost = self._lost_messages()
        return reaped

    def _lost_messages(self) -> list[Queued]:
        """Publish again the batches queued for over a lease that no message in the broker
        stands for: none waits in their queue, and none was taken by a worker lately (a
        message taken longer ago than a lease plus the longest retry countdown, for a batch
        still queued, is held by a worker that died before it claimed the batch: it is given
        back to its queue)."""
        bound = self.lease.duration_s
        if self.client.exists(SCAN_KEY):
            return []
        with self.db.session() as session:
            waiting = long_queued(session, bound)
        if not waiting:
            return []
        started = self.clock()
        contents = broker_contents(self.client, sorted({q.queue for q in waiting}))
        pause_s = (self.clock() - started) * SCAN_DUTY
        if pause_s > self.lease.heartbeat_s:
            self.client.set(SCAN_KEY, self.identity, px=int(pause_s * 1000))
        held_for = bound + defaults.RETRY_BACKOFF_MAX_S
        present = contents.present(self.wall() - held_for)
        missing = [q for q in waiting if q.batch_id not in present]
        if not missing:
            return []
        with self.db.session() as session:
            taken = set(mark_republished(session, [q.batch_id for q in missing], bound))
        lost = [q for q in missing if q.batch_id in taken]
        given_back, fresh = [], []
        for q in lost:
            takes = contents.held.get(q.batch_id, [])
            if takes and restore(self.client, takes[0][0], q.queue):
                given_back.append(q)
            else:
                fresh.append(q)
        self.publish(fresh)
        if fresh:
            log.warning("reaper: published again %s batch(es) queued for over %gs in the database but in no queue "
                        "(the broker lost its messages): %s", len(fresh), bound, _ids(fresh))
        if given_back:
            log.warning("reaper: gave back %s message(s) taken over %gs ago by workers that never claimed their batch "
                        "(they died holding them): %s", len(given_back), held_for, _ids(given_back))
        return lost

    def run(self, stop: threading.Event) -> None:
        """Look every heartbeat interval until ``stop`` is set; a failed look is logged and the
        next one tried."""
        while not stop.wait(self.lease.heartbeat_s):
            try:
                self.tick()
            except Exception:
                log.exception("reaper: the look failed; trying again in %gs", self.lease.heartbeat_s)


def start_reaper(reaper: Reaper) -> Callable[[], None]:
    """Run ``reaper`` in a daemon thread; returns what stops it."""
    stop = threading.Event()
    thread = threading.Thread(target=reaper.run, args=(stop,), name="reaper", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=10)

    return halt


def reap_in_background(database_url: str, broker_url: str, lease: Lease, identity: str) -> Callable[[], None]:
    """A reaper with a database engine, a broker client and a Celery app of its own, in a
    daemon thread; returns what stops it and closes them."""
    from boundary.api.db.session import make_engine
    from boundary.workers.broker import connect, publish
    from boundary.workers.celery_app import make_app

    db = Database(make_engine(database_url))
    app = make_app(broker_url, database_url)
    client = connect(broker_url)
    halt = start_reaper(Reaper(db, client, lambda batches: publish(app, batches), lease, identity))

    def close() -> None:
        halt()
        db.dispose()
        client.close()

    return close
