"""The controller loop: every interval, read each queue's depth, decide (boundary.api.autoscale_policy.decide),
log the decision and its reason, act through the backend, and publish the state for `boundary
status`. A broker that does not answer is waited for, with a log line per attempt; the workers
stay as they are meanwhile."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from boundary.api import defaults
from boundary.api.autoscale_policy import Backend, Decision, Memory, Policy, QueuePolicy, decide
from boundary.api.batch_state import Lease
from boundary.api.db.session import redact_url
from boundary.api.errors import ConfigError
from boundary.api.log import log_with_time
from boundary.workers.autoscale.depth import Depth, read_depths
from boundary.workers.autoscale.state import age_of, clear_state, read_state, write_state
from boundary.workers.broker import connect

log = logging.getLogger("boundary.autoscale")


@dataclass
class DryRun:
    """Decides and says what ``backend`` would do, and does nothing: the worker counts follow
    the decisions. ``start`` is the count assumed at first (None: the policy's floor)."""

    backend: Any
    start: int | None = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.backend.name}, dry run"

    def running(self, queue: QueuePolicy) -> int | None:
        return self.counts.get(queue.queue, self.start)

    def scale(self, queue: QueuePolicy, desired: int) -> None:
        first = queue.queue not in self.counts
        current = self.counts.get(queue.queue, self.start if self.start is not None else queue.min)
        if desired != current or (first and self.start is None):  # unknown start: the backend would act anyway
            log.info("%s: dry run: would %s", queue.queue, self.backend.plan(queue, current, desired))
        self.counts[queue.queue] = desired

    def close(self) -> None:
        pass


@dataclass
class Controller:
    policy: Policy
    backend: Backend
    client: redis.Redis
    broker_url: str
    verbose: bool = False
    """Log every decision (dry runs, single ticks), not only changes and new holds."""
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    state_key: str = defaults.AUTOSCALE_STATE_KEY
    memory: dict[str, Memory] = field(default_factory=dict)
    last: dict[str, Decision] = field(default_factory=dict)
    last_change: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: int = 0
    reaper: Any = None
    """A ``boundary.workers.reaper.Reaper``, when the controller has a database: each tick it
    takes back the batches of dead workers and republishes lost messages."""
    _checked_others: bool = False

    @property
    def broker(self) -> str:
        return redact_url(self.broker_url)

    def tick(self) -> float:
        """One look at the queues; returns the seconds to wait before the next."""
        now = self.clock()
        try:
            depths = read_depths(self.client, self.policy.names())
        except redis.RedisError as exc:
            return self._broker_down(exc)
        if self.failures:
            log.info("broker %s answers again (after %s failed attempts)", self.broker, self.failures)
            self.failures = 0
        if not self._checked_others:
            self._warn_about_other_controllers()
        if self.reaper is not None:
            try:
                self.reaper.tick()
            except Exception:
                log.exception("reaping failed; trying again next tick")
        entries = {}
        for queue in self.policy.queues:
            depth = depths[queue.queue]
            before = self.backend.running(queue)
            memory = self.memory.get(queue.queue) or Memory(before if before is not None else queue.min)
            decision, self.memory[queue.queue] = decide(self.policy, queue, depth.total, memory, now)
            self._report(decision, depth)
            self.backend.scale(queue, decision.desired)
            current = self.backend.running(queue) if decision.desired != before else before
            entries[queue.queue] = self._entry(queue, decision, depth, current)
            self.last[queue.queue] = decision
        self._publish(entries)
        return self.policy.interval_s

    def run(self, stop: threading.Event, once: bool = False) -> None:
        """Tick until ``stop`` is set (or once), then close the backend (the local one stops
        its workers, each finishing its batch) and withdraw the published state."""
        log.info("autoscaling %s through the %s backend; broker %s; every %gs (scale-up cooldown %gs, "
                 "scale-down cooldown %gs)", ", ".join(self.policy.names()), self.backend.name, self.broker,
                 self.policy.interval_s, self.policy.scale_up_cooldown_s, self.policy.scale_down_cooldown_s)
        try:
            while True:
                delay = self.tick()
                if once and self.failures:
                    raise ConfigError(f"broker {self.broker} does not answer: nothing was decided")
                if once or stop.wait(delay):
                    break
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.backend.close()
        except KeyboardInterrupt:
            kill = getattr(self.backend, "kill", None)
            if kill is not None:
                kill()
            raise
        finally:
            try:
                clear_state(self.client, self.identity, self.policy.names(), self.state_key)
            except redis.RedisError:
                pass

    def _broker_down(self, exc: redis.RedisError) -> float:
        self.failures += 1
        ceiling = max(self.policy.interval_s, defaults.AUTOSCALE_BROKER_RETRY_MAX_S)
        delay = min(ceiling, self.policy.interval_s * 2 ** min(self.failures - 1, 16))
        reap = getattr(self.backend, "reap", None)
        if reap is not None:
            reap()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("broker %s does not answer (%s): workers stay as they are; retrying in %.0fs (attempt %s)",
                    self.broker, first, delay, self.failures)
        return delay

    def _report(self, decision: Decision, depth: Depth) -> None:
        previous = self.last.get(decision.queue)
        new_hold = decision.action == "hold" and (previous is None or previous.action != "hold")
        level = logging.INFO if self.verbose or decision.changed or new_hold else logging.DEBUG
        log.log(level, "%s [%s waiting, %s reserved]", decision.line(), depth.waiting, depth.reserved)
        if decision.changed:
            self.last_change[decision.queue] = {"at": self.wall(), "action": decision.action, "from": decision.previous,
                                                "to": decision.desired, "reason": decision.reason}

    def _entry(self, queue: QueuePolicy, decision: Decision, depth: Depth, current: int | None) -> dict[str, Any]:
        describe = getattr(self.backend, "workers", None)
        stopping = getattr(self.backend, "stopping", None)
        return {
            "queue": queue.queue, "waiting": depth.waiting, "reserved": depth.reserved, "depth": depth.total,
            "current": current, "desired": decision.desired, "wanted": decision.wanted,
            "stopping": stopping(queue) if stopping else 0, "action": decision.action, "reason": decision.reason,
            "last_change": self.last_change.get(queue.queue), "updated_at": self.wall(),
            "interval_s": self.policy.interval_s, "controller": self.identity, "backend": self.backend.name,
            "min": queue.min, "max": queue.max, "target_backlog": queue.target_backlog,
            "workers": describe(queue) if describe else [],
        }

    def _publish(self, entries: dict[str, dict[str, Any]]) -> None:
        try:
            write_state(self.client, entries, self.state_key)
        except redis.RedisError as exc:
            log.debug("could not publish the state: %s", exc)

    def _warn_about_other_controllers(self) -> None:
        self._checked_others = True
        try:
            state = read_state(self.client, self.state_key)
        except redis.RedisError:
            return
        for queue in self.policy.names():
            entry = state.get(queue)
            if entry and entry.get("controller") != self.identity and not age_of(entry, self.wall())[1]:
                log.warning("%s: controller %s also scales this queue (it wrote %.0fs ago): two controllers on one "
                            "queue fight each other", queue, entry.get("controller"), age_of(entry, self.wall())[0])


def serve(controller: Controller, once: bool = False) -> None:
    """Run ``controller`` in this process until SIGTERM or Ctrl-C; a second one kills the
    workers still finishing their batch."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.info("%s: stopping; workers finish their current batch (send it again to kill them)",
                 signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        controller.run(stop, once=once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class BackendOptions:
    """Where a backend runs workers: ``local`` (processes here, logs in ``log_dir``) or
    ``compose`` (services of a Compose project)."""

    database_url: str | None = None
    log_dir: Path | None = None
    compose_file: str = "docker-compose.yml"
    compose_project: str | None = None
    compose_command: str = "docker compose"


def open_backend(name: str, policy: Policy, broker_url: str, options: BackendOptions) -> Backend:
    if name == "compose":
        from boundary.workers.autoscale.compose import ComposeBackend

        return ComposeBackend(options.compose_file, options.compose_project,
                              tuple(shlex.split(options.compose_command)), policy.drain_timeout_s)
    from boundary.workers.autoscale.local import LocalBackend

    env = {**os.environ, "BOUNDARY_BROKER_URL": broker_url}
    if options.database_url:
        env["BOUNDARY_DATABASE_URL"] = options.database_url
    return LocalBackend(env, options.log_dir, policy.drain_timeout_s)


def run_controller(policy: Policy, backend: str, broker_url: str, options: BackendOptions, dry_run: bool = False,
                   once: bool = False, lease: Lease | None = None) -> None:
    """Scale ``policy``'s queues through the backend named ``backend`` until stopped (or for
    one look, ``once``); a dry run decides and says what it would do. With a database it
    reaps too (not in a dry run)."""
    acting = open_backend(backend, policy, broker_url, options)
    log_with_time("boundary.autoscale")
    log_with_time("boundary.reaper")
    client = connect(broker_url)
    controller = Controller(policy, DryRun(acting, start=0 if backend == "local" else None) if dry_run else acting,
                            client, broker_url, verbose=dry_run or once)
    database = None
    if options.database_url and not dry_run:
        from boundary.api.db import Database
        from boundary.api.db.session import make_engine
        from boundary.workers.broker import publish
        from boundary.workers.celery_app import make_app
        from boundary.workers.reaper import Reaper

        database = Database(make_engine(options.database_url))
        app = make_app(broker_url, options.database_url)
        controller.reaper = Reaper(database, client, lambda batches: publish(app, batches), lease or Lease(),
                                   controller.identity)
    try:
        serve(controller, once=once)
    finally:
        if database is not None:
            database.dispose()
