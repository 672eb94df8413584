"""What a controller tells the world: per queue, its current and desired workers and its last
decision, as JSON with a timestamp in one Redis hash of the broker's database (a field per
queue, so that controllers on several hosts may each scale their own queues)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from boundary.api import defaults
from boundary.api.autoscale_policy import QueueView
from boundary.api.db.session import redact_url
from boundary.workers.autoscale.depth import discover_queues, read_depths
from boundary.workers.broker import connect

STALE_INTERVALS = 3
"""A controller's word is stale when it has not written for this many of its intervals."""


def write_state(client: redis.Redis, entries: Mapping[str, Mapping[str, Any]],
                key: str = defaults.AUTOSCALE_STATE_KEY) -> None:
    client.hset(key, mapping={queue: json.dumps(entry, sort_keys=True) for queue, entry in entries.items()})


def clear_state(client: redis.Redis, controller: str, queues: Sequence[str],
                key: str = defaults.AUTOSCALE_STATE_KEY) -> None:
    """Remove this controller's entries (not those another controller wrote since)."""
    mine = [q for q, entry in read_state(client, key).items() if q in queues and entry.get("controller") == controller]
    if mine:
        client.hdel(key, *mine)


def read_state(client: redis.Redis, key: str = defaults.AUTOSCALE_STATE_KEY) -> dict[str, dict[str, Any]]:
    out = {}
    for queue, raw in client.hgetall(key).items():
        try:
            out[queue.decode()] = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def age_of(entry: Mapping[str, Any], now: float) -> tuple[float, bool]:
    """Seconds since the entry was written, and whether that is stale."""
    age = max(0.0, now - float(entry.get("updated_at", 0)))
    return age, age > STALE_INTERVALS * float(entry.get("interval_s", defaults.AUTOSCALE_INTERVAL_S)) + 5


def queue_views(client: redis.Redis, key: str = defaults.AUTOSCALE_STATE_KEY,
                now: float | None = None) -> list[QueueView]:
    """Every queue a controller manages or that holds messages: its depth now, and the
    controller's current and desired workers. Raises redis.RedisError without a broker."""
    now = time.time() if now is None else now
    state = read_state(client, key)
    queues = sorted(set(state) | set(discover_queues(client)))
    depths = read_depths(client, queues)
    views = []
    for queue in queues:
        entry = state.get(queue)
        if entry is None:
            views.append(QueueView(queue, depths[queue].waiting, depths[queue].reserved))
            continue
        age, stale = age_of(entry, now)
        views.append(QueueView(
            queue, depths[queue].waiting, depths[queue].reserved, current=entry.get("current"),
            desired=entry.get("desired"), stopping=int(entry.get("stopping") or 0), reason=entry.get("reason"),
            controller=entry.get("controller"), age_s=age, stale=stale, workers=list(entry.get("workers") or []),
        ))
    return views


def queue_reader(broker_url: str, timeout_s: float = 2.0) -> Callable[[], tuple[list[QueueView], str | None]]:
    """A function that reads the queues now: their views, or none and why the broker does not
    answer (`boundary status` keeps going without one)."""
    client = connect(broker_url, timeout_s=timeout_s)

    def read() -> tuple[list[QueueView], str | None]:
        try:
            return queue_views(client), None
        except redis.RedisError as exc:
            return [], f"broker {redact_url(broker_url)} does not answer: {str(exc).splitlines()[0]}"

    return read
