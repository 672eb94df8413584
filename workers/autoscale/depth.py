"""How deep each queue is (waiting plus unacknowledged messages), read from the broker the way
Kombu's Redis transport stores it (docs/fleet.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel

from boundary.api.queues import CPU_QUEUES, SAMPLE_PREFIX, is_ours
from boundary.workers.messages import list_names


@dataclass(frozen=True)
class Depth:
    waiting: int
    reserved: int

    @property
    def total(self) -> int:
        return self.waiting + self.reserved


def _reserved_queue(entry: bytes) -> str | None:
    """The queue of one ``unacked`` entry: its routing key (Celery routes a task to the queue of
    the same name through the default exchange), else the one its delivery info names."""
    try:
        message, _exchange, routing_key = json.loads(entry)
        return routing_key or message["properties"]["delivery_info"]["routing_key"]
    except (ValueError, TypeError, KeyError):
        return None


def _count_reserved(entries: Iterable[bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        queue = _reserved_queue(entry)
        if queue is not None:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


def read_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, Depth]:
    """Waiting and reserved messages of each queue, in one round trip. Raises redis.RedisError
    when the broker does not answer."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for name in list_names(queue):
                pipe.llen(name)
        pipe.hvals(Channel.unacked_key)
        results = pipe.execute()
    steps = len(PRIORITY_STEPS)
    reserved = _count_reserved(results[-1])
    return {
        queue: Depth(sum(results[i * steps:(i + 1) * steps]), reserved.get(queue, 0))
        for i, queue in enumerate(queues)
    }


def discover_queues(client: redis.Redis) -> list[str]:
    """boundary's queues that hold messages now (waiting or reserved)."""
    matching = client.scan_iter(match=f"{SAMPLE_PREFIX}*", count=500)
    candidates = {raw.decode(errors="replace").split(Channel.sep)[0] for raw in matching}
    candidates |= {*CPU_QUEUES, *_count_reserved(client.hvals(Channel.unacked_key))}
    ours = [q for q in sorted(candidates) if is_ours(q)]
    return [q for q, depth in read_depths(client, ours).items() if depth.total]

