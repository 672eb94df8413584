"""The autoscaling policy: how many workers each queue should have, decided from its depth.
``decide`` is the whole decision, a pure function; the controller (``boundary.workers.autoscale``)
reads the depths and acts, so this module needs neither Redis nor Celery. The rule, the
cooldowns and the policy file: docs/library.md, "The autoscaling policy".
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from boundary.api import defaults
from boundary.api.errors import ConfigError, DataError, UnknownName
from boundary.api.queues import check_queue_name
from boundary.api.yamlfile import read_yaml

TOP_KEYS = {"interval_s", "scale_up_cooldown_s", "scale_down_cooldown_s", "drain_timeout_s", "queues"}
QUEUE_KEYS = {"min", "max", "target_backlog", "args", "service", "deployment"}


@dataclass(frozen=True)
class QueuePolicy:
    """The workers of one queue: between ``min`` and ``max``, one per ``target_backlog``
    messages (waiting or being worked on). ``args`` are added to the worker's command line;
    ``service`` and ``deployment`` name its Compose service and Kubernetes Deployment."""

    queue: str
    min: int
    max: int
    target_backlog: int
    args: tuple[str, ...] = ()
    service: str | None = None
    deployment: str | None = None

    @property
    def gpu(self) -> bool:
        """Sampling queues are served by GPU workers, one model each."""
        return self.queue.startswith("sample.")

    def wanted(self, depth: int) -> int:
        return max(self.min, min(self.max, math.ceil(max(0, depth) / self.target_backlog)))

    def worker_command(self) -> list[str]:
        """The `boundary` arguments that start one worker for this queue."""
        if self.gpu:
            return ["worker", "sample", "--model", self.queue.removeprefix("sample."), *self.args]
        return ["worker", self.queue, *self.args]

    def compose_service(self) -> str:
        """The Compose service that runs this queue's workers (docker-compose.yml's names)."""
        return self.service or ("sample" if self.gpu else self.queue)

    def deployment_name(self) -> str:
        """The Kubernetes Deployment of this queue's workers: a DNS-1123 name."""
        if self.deployment:
            return self.deployment
        return "boundary-" + re.sub(r"[^a-z0-9]+", "-", self.queue.lower()).strip("-")[:54]


@dataclass(frozen=True)
class Policy:
    queues: tuple[QueuePolicy, ...]
    interval_s: float = defaults.AUTOSCALE_INTERVAL_S
    scale_up_cooldown_s: float = defaults.AUTOSCALE_SCALE_UP_COOLDOWN_S
    scale_down_cooldown_s: float = defaults.AUTOSCALE_SCALE_DOWN_COOLDOWN_S
    drain_timeout_s: float = defaults.AUTOSCALE_DRAIN_TIMEOUT_S

    def names(self) -> list[str]:
        return [q.queue for q in self.queues]


@dataclass(frozen=True)
class Memory:
    """What the decision remembers about one queue between ticks: the workers it wants, when
    that last changed, and since when fewer would do (None: not below)."""

    desired: int
    changed_at: float | None = None
    below_since: float | None = None


@dataclass(frozen=True)
class Decision:
    """One tick for one queue. ``action``: scale-up, scale-down, hold (a change waits for its
    cooldown) or steady."""

    queue: str
    depth: int
    previous: int
    wanted: int
    desired: int
    action: str
    reason: str

    @property
    def changed(self) -> bool:
        return self.desired != self.previous

    def line(self) -> str:
        if self.changed:
            return f"{self.queue}: {self.action} {self.previous} -> {self.desired} workers: {self.reason}"
        return f"{self.queue}: {self.action} at {self.desired} workers: {self.reason}"


def decide(policy: Policy, queue: QueuePolicy, depth: int, memory: Memory, now: float) -> tuple[Decision, Memory]:
    """The number of workers ``queue`` should have now, and what to remember for next time."""
    before = memory.desired
    wanted = queue.wanted(depth)
    raw = math.ceil(max(0, depth) / queue.target_backlog)
    held = "" if raw == wanted else f", held to {'max' if raw > wanted else 'min'} {wanted}"
    need = f"depth {depth} / target {queue.target_backlog} -> {raw}{held}"

    def made(desired: int, action: str, reason: str, new: Memory) -> tuple[Decision, Memory]:
        return Decision(queue.queue, depth, before, wanted, desired, action, reason), new

    if not queue.min <= before <= queue.max:  # a first look, or a changed policy: no cooldown applies
        where = "below the floor" if before < queue.min else "above the ceiling"
        action = "scale-up" if wanted > before else "scale-down"
        return made(wanted, action, f"{need}; {before} is {where}", Memory(wanted, now))
    if wanted > before:
        since = math.inf if memory.changed_at is None else now - memory.changed_at
        if since >= policy.scale_up_cooldown_s:
            return made(wanted, "scale-up", need, Memory(wanted, now))
        left = policy.scale_up_cooldown_s - since
        return made(before, "hold", f"{need}; scale-up cooldown, {left:.0f}s left", replace(memory, below_since=None))
    if wanted < before:
        below_since = now if memory.below_since is None else memory.below_since
        below = now - below_since
        if below >= policy.scale_down_cooldown_s:
            return made(wanted, "scale-down", f"{need} for {below:.0f}s", Memory(wanted, now))
        left = policy.scale_down_cooldown_s - below
        held_memory = replace(memory, below_since=below_since)
        return made(before, "hold", f"{need}; scale-down cooldown, {left:.0f}s left", held_memory)
    return made(before, "steady", need, replace(memory, below_since=None))


class Backend(Protocol):
    """Where workers run. ``running`` counts the workers of a queue that take work (None:
    unknown); ``scale`` makes it ``desired``, replacing workers that died; ``close`` ends."""

    name: str

    def running(self, queue: QueuePolicy) -> int | None: ...

    def scale(self, queue: QueuePolicy, desired: int) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class QueueView:
    """One queue as `boundary status` shows it: depth read now from the broker, and the
    controller's last word (None where no controller manages the queue)."""

    queue: str
    waiting: int
    reserved: int
    current: int | None = None
    desired: int | None = None
    stopping: int = 0
    reason: str | None = None
    controller: str | None = None
    age_s: float | None = None
    stale: bool = False
    workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return self.waiting + self.reserved


def queue_defaults(name: str) -> dict[str, Any]:
    gpu = name.startswith("sample.")
    return {
        "min": defaults.AUTOSCALE_MIN_GPU if gpu else defaults.AUTOSCALE_MIN_CPU,
        "max": defaults.AUTOSCALE_MAX_WORKERS,
        "target_backlog": defaults.AUTOSCALE_TARGET_BACKLOG_GPU if gpu else defaults.AUTOSCALE_TARGET_BACKLOG_CPU,
    }


def load_policy(path: Path) -> Policy:
    """Read and check a policy file; errors name the file, line and key."""
    data = read_yaml(path)
    try:
        return parse_policy(data)
    except ConfigError as exc:
        raise DataError(path, getattr(exc, "line", None), str(exc)) from None


def parse_policy(data: Any) -> Policy:
    """A policy from its mapping form (a parsed YAML file). Raises ConfigError."""
    if not isinstance(data, Mapping):
        raise _error(data, "a policy is a mapping with 'queues'")
    _no_unknown_keys(data, TOP_KEYS, "")
    queues_node = data.get("queues")
    if not isinstance(queues_node, Mapping) or not queues_node:
        raise _error(data, "queues: missing or empty: give a mapping of queue names to {min, max, target_backlog}")
    queues = tuple(_queue(str(name), spec, queues_node) for name, spec in queues_node.items())
    return _checked(_policy(queues, data))


def _policy(queues: tuple[QueuePolicy, ...], data: Mapping[str, Any]) -> Policy:
    numbers = {}
    for key, minimum in (("interval_s", 0.1), ("scale_up_cooldown_s", 0.0), ("scale_down_cooldown_s", 0.0),
                         ("drain_timeout_s", 0.0)):
        if data.get(key) is not None:
            numbers[key] = _number(data[key], key, data, minimum)
    return Policy(queues, **numbers)


def _queue(name: str, spec: Any, parent: Mapping) -> QueuePolicy:
    path = f"queues.{name}"
    try:
        check_queue_name(name)
    except UnknownName as exc:
        raise _error(parent, f"{path}: {exc}") from None
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise _error(parent, f"{path}: must be a mapping of min, max, target_backlog, args")
    _no_unknown_keys(spec, QUEUE_KEYS, path)
    given = {k: spec[k] for k in ("min", "max", "target_backlog") if spec.get(k) is not None}
    values = {**queue_defaults(name), **given}
    counts = {k: _integer(values[k], f"{path}.{k}", spec, minimum=1 if k == "target_backlog" else 0) for k in values}
    args = spec.get("args", ())
    if isinstance(args, str):
        args = shlex.split(args)
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, (str, int, float)) for a in args):
        raise _error(spec, f"{path}.args: must be a list of strings (or one string)")
    if counts["min"] > counts["max"]:
        raise _error(spec, f"{path}: min ({counts['min']}) is above max ({counts['max']})")
    names = {k: str(spec[k]) for k in ("service", "deployment") if spec.get(k)}
    if "deployment" in names and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", names["deployment"]):
        raise _error(spec, f"{path}.deployment: '{names['deployment']}' is not a Kubernetes name "
                           "(lowercase letters, digits, '-')")
    return QueuePolicy(name, counts["min"], counts["max"], counts["target_backlog"], tuple(str(a) for a in args),
                       **names)


def _checked(policy: Policy) -> Policy:
    for q in policy.queues:
        if q.min > q.max:
            raise ConfigError(f"queue '{q.queue}': min ({q.min}) is above max ({q.max})")
        if q.max < 1:
            raise ConfigError(f"queue '{q.queue}': max must be at least 1")
    services: dict[str, str] = {}
    for q in policy.queues:
        other = services.setdefault(q.compose_service(), q.queue)
        if other != q.queue:
            raise ConfigError(f"queues '{other}' and '{q.queue}' both run as Compose service '{q.compose_service()}': "
                              "give each its own `service`")
    return policy


def parse_queue_flag(spec: str) -> tuple[str, dict[str, int]]:
    """``NAME=MIN:MAX[:TARGET_BACKLOG]``, e.g. ``sample.qwen=0:2:4`` or ``grade=1:4``."""
    name, sep, numbers = spec.partition("=")
    parts = numbers.split(":")
    if not sep or not name or len(parts) not in (2, 3):
        raise ConfigError(f"--queue takes NAME=MIN:MAX[:TARGET_BACKLOG], got '{spec}'")
    check_queue_name(name)
    keys = ("min", "max", "target_backlog")[: len(parts)]
    values: dict[str, int] = {}
    for key, raw in zip(keys, parts, strict=True):
        try:
            values[key] = int(raw)
        except ValueError:
            raise ConfigError(f"--queue {spec}: {key} must be a whole number, got '{raw}'") from None
    return name, values


def build_policy(
    base: Policy | None,
    queue_flags: Sequence[str] = (),
    interval_s: float | None = None,
    scale_up_cooldown_s: float | None = None,
    scale_down_cooldown_s: float | None = None,
    drain_timeout_s: float | None = None,
) -> Policy:
    """A policy file's policy (or none) with the flags on top: ``--queue`` adds or replaces a
    queue's numbers (keeping the file's args), the others replace the global settings."""
    queues = {q.queue: q for q in (base.queues if base else ())}
    for spec in queue_flags:
        name, values = parse_queue_flag(spec)
        old = queues.get(name)
        merged = {**queue_defaults(name), **({"min": old.min, "max": old.max, "target_backlog": old.target_backlog}
                                             if old else {}), **values}
        for key, value in merged.items():
            least = 1 if key == "target_backlog" else 0
            if value < least:
                raise ConfigError(f"--queue {spec}: {key} must be at least {least}, got {value}")
        queues[name] = QueuePolicy(name, merged["min"], merged["max"], merged["target_backlog"],
                                   *((old.args, old.service, old.deployment) if old else ()))
    if not queues:
        raise ConfigError("no queues to scale: give a policy file or --queue NAME=MIN:MAX[:TARGET_BACKLOG]")
    flags = {"interval_s": interval_s, "scale_up_cooldown_s": scale_up_cooldown_s,
             "scale_down_cooldown_s": scale_down_cooldown_s, "drain_timeout_s": drain_timeout_s}
    settings = {k: getattr(base or Policy(()), k) if v is None else v for k, v in flags.items()}
    return _checked(_policy(tuple(queues.values()), settings))


def parse_pool_autoscale(text: str) -> tuple[int, int]:
    """``MAX,MIN`` for Celery's own pool autoscaler (``--autoscale``): 1 <= MIN <= MAX."""
    high, sep, low = text.partition(",")
    try:
        numbers = int(high), int(low) if sep else 1
    except ValueError:
        raise ConfigError(f"--autoscale takes MAX,MIN (whole numbers, e.g. 8,2), got '{text}'") from None
    if not 1 <= numbers[1] <= numbers[0]:
        raise ConfigError(f"--autoscale {text}: need 1 <= MIN <= MAX")
    return numbers


def _error(node: Any, message: str) -> ConfigError:
    exc = ConfigError(message)
    exc.line = getattr(node, "line", None)  # type: ignore[attr-defined]
    return exc


def _no_unknown_keys(node: Mapping, known: set[str], path: str) -> None:
    unknown = sorted(str(k) for k in set(node) - known)
    if unknown:
        where = f"{path}: " if path else ""
        raise _error(node, f"{where}unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")


def _integer(value: Any, path: str, node: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(node, f"{path}: must be a whole number, got {value!r}")
    if value < minimum:
        raise _error(node, f"{path}: must be at least {minimum}, got {value}")
    return value


def _number(value: Any, path: str, node: Any, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(node, f"{path}: must be a number of seconds, got {value!r}")
    if value < minimum or not math.isfinite(value):
        raise _error(node, f"{path}: must be at least {minimum:g}, got {value}")
    return float(value)
