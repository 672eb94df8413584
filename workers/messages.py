"""The messages the broker holds, read and moved the way Kombu's Redis transport stores them:
a queue is a Redis list per priority step; a message a worker has taken but not acknowledged
is in the ``unacked`` hash under its delivery tag as ``[message, exchange, routing_key]``, with
its time in the ``unacked_index`` sorted set. Used to find batches whose message was lost and
to give a dead worker's message back to its queue (docs/fleet.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel

from boundary.workers.celery_app import GRADE_TASK, SAMPLE_TASK, SCORE_TASK

OUR_TASKS = (SAMPLE_TASK, GRADE_TASK, SCORE_TASK)


def list_names(queue: str) -> list[str]:
    """The Redis lists holding a queue's waiting messages, one per priority step."""
    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


def batch_id(message: dict[str, Any]) -> int | None:
    """The batch a message of ours carries (its one argument), else None."""
    try:
        if message["headers"]["task"] not in OUR_TASKS:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _message(entry: bytes, unacked: bool) -> dict[str, Any] | None:
    try:
        message = json.loads(entry)
    except ValueError:
        return None
    if unacked:
        return message[0] if isinstance(message, list) and message else None
    return message


@dataclass(frozen=True)
class InBroker:
    """The batches the broker holds a message for: waiting in a queue, or taken by a worker
    and not acknowledged (with the delivery tag and the time it was taken, as Unix seconds)."""

    waiting: set[int] = field(default_factory=set)
    held: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    def present(self, taken_since: float) -> set[int]:
        """The batches with a message waiting, or taken by a worker at ``taken_since`` or later."""
        return self.waiting | {b for b, takes in self.held.items() if any(at >= taken_since for _, at in takes)}


def broker_contents(client: redis.Redis, queues: Sequence[str]) -> InBroker:
    """Every message of ours waiting in ``queues``, and every one held unacknowledged by a
    worker. Raises redis.RedisError when the broker does not answer."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for name in list_names(queue):
                pipe.lrange(name, 0, -1)
        pipe.hgetall(Channel.unacked_key)
        pipe.zrange(Channel.unacked_index_key, 0, -1, withscores=True)
        results = pipe.execute()
    contents = InBroker()
    for waiting in results[:-2]:
        for entry in waiting:
            found = batch_id(_message(entry, unacked=False) or {})
            if found is not None:
                contents.waiting.add(found)
    taken_at = {tag.decode(): at for tag, at in results[-1]}
    for tag, entry in results[-2].items():
        found = batch_id(_message(entry, unacked=True) or {})
        if found is not None:
            tag = tag.decode()
            contents.held.setdefault(found, []).append((tag, taken_at.get(tag, 0.0)))
    return contents


def batches_in_broker(client: redis.Redis, queues: Sequence[str]) -> set[int]:
    """The batch ids of every message waiting in ``queues`` or held unacknowledged by a worker.
    Raises redis.RedisError when the broker does not answer."""
    contents = broker_contents(client, queues)
    return contents.waiting | set(contents.held)


def restore(client: redis.Redis, tag: str, queue: str) -> bool:
    """Give the unacknowledged message ``tag`` back to ``queue`` (first in line), as Kombu
    restores the messages of a worker that went away; False when no worker holds it (it was
    acknowledged, restored already, or lost with the broker's data)."""

    def move(pipe: redis.client.Pipeline) -> bool:
        raw = pipe.hget(Channel.unacked_key, tag)
        pipe.multi()
        pipe.zrem(Channel.unacked_index_key, tag)
        pipe.hdel(Channel.unacked_key, tag)
        if not raw:
            return False
        message = json.loads(raw)[0]
        message.setdefault("headers", {})["redelivered"] = True
        message.setdefault("properties", {}).setdefault("delivery_info", {})["redelivered"] = True
        step = int(message["properties"].get("priority") or 0)
        steps = [s for s in PRIORITY_STEPS if s <= step] or [0]
        pipe.rpush(list_names(queue)[PRIORITY_STEPS.index(steps[-1])], json.dumps(message))
        return True

    return bool(client.transaction(move, Channel.unacked_key, value_from_callable=True))
