"""Queue names: the queue each kind of batch goes to, and which names are boundary's."""

from __future__ import annotations

from boundary.api.errors import UnknownName

SAMPLE_PREFIX = "sample."
SCORE_PREFIX = "score."
CPU_QUEUES = ("grade", "sandbox")
KNOWN_QUEUES = ("sample.MODEL", *CPU_QUEUES)


def sample_queue(model_name: str) -> str:
    return f"{SAMPLE_PREFIX}{model_name}"


def score_queue(model_name: str) -> str:
    return f"{SCORE_PREFIX}{model_name}"


def grade_queue(kind: str) -> str:
    """Math answers go to ``grade``, code answers to ``sandbox``."""
    return "sandbox" if kind == "code" else "grade"


def sampled_model(queue: str) -> str | None:
    """The model a sampling queue serves (None for any other queue)."""
    return queue.removeprefix(SAMPLE_PREFIX) if queue.startswith(SAMPLE_PREFIX) else None


def check_queue_name(name: str) -> str:
    """A queue the autoscaler can scale: ``sample.MODEL``, ``grade`` or ``sandbox``."""
    if name in CPU_QUEUES or (name.startswith(SAMPLE_PREFIX) and len(name) > len(SAMPLE_PREFIX)):
        return name
    raise UnknownName("queue", name, KNOWN_QUEUES)


def is_ours(queue: str) -> bool:
    """Whether a broker's queue is one of boundary's (see ``check_queue_name``)."""
    try:
        check_queue_name(queue)
        return True
    except UnknownName:
        return False
