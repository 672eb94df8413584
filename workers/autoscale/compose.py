"""The Compose backend: scales the services of docker-compose.yml with `docker compose up
--scale SERVICE=N`; see docs/fleet.md."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from boundary.api import defaults
from boundary.api.autoscale_policy import QueuePolicy

log = logging.getLogger("boundary.autoscale")

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def run_command(argv: Sequence[str], timeout_s: float = 600.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s)


@dataclass
class ComposeBackend:
    file: str = "docker-compose.yml"
    project: str | None = None
    command: Sequence[str] = ("docker", "compose")
    drain_timeout_s: float = defaults.AUTOSCALE_DRAIN_TIMEOUT_S
    runner: Runner = run_command
    name: str = "compose"
    _applied: dict[str, int] = field(default_factory=dict)
    _observed: dict[str, int | None] = field(default_factory=dict)
    _unknown: set[str] = field(default_factory=set)

    def base(self) -> list[str]:
        return [*self.command, "--file", self.file, *(["--project-name", self.project] if self.project else [])]

    def up_command(self, queue: QueuePolicy, replicas: int) -> list[str]:
        """Scale the queue's service to ``replicas`` containers without touching the others."""
        service = queue.compose_service()
        return [*self.base(), "up", "--detach", "--no-deps", "--no-recreate",
                "--timeout", str(int(self.drain_timeout_s)), "--scale", f"{service}={replicas}", service]

    def ps_command(self, queue: QueuePolicy) -> list[str]:
        """The running containers of the queue's service, one id a line."""
        return [*self.base(), "ps", "--quiet", "--status", "running", queue.compose_service()]

    def plan(self, queue: QueuePolicy, current: int, desired: int) -> str:
        return "run " + shlex.join(self.up_command(queue, desired))

    def running(self, queue: QueuePolicy) -> int | None:
        """The service's running containers; None when Compose cannot tell (said once: the
        controller then relies on what it applied)."""
        done = self._run(self.ps_command(queue), quiet=queue.queue in self._unknown)
        count = None if done is None else sum(1 for line in done.stdout.splitlines() if line.strip())
        (self._unknown.add if count is None else self._unknown.discard)(queue.queue)
        self._observed[queue.queue] = count
        return count

    def scale(self, queue: QueuePolicy, desired: int) -> None:
        """Run `up --scale` when the wanted number changed, or the service has another."""
        observed = self._observed.get(queue.queue)
        if self._applied.get(queue.queue) == desired and observed in (None, desired):
            return
        if self._run(self.up_command(queue, desired)) is not None:
            self._applied[queue.queue] = desired
            log.info("%s: service %s scaled to %s", queue.queue, queue.compose_service(), desired)

    def close(self) -> None:
        """Containers outlive the controller: they stay as they are."""

    def _run(self, argv: list[str], quiet: bool = False) -> subprocess.CompletedProcess | None:
        level = logging.DEBUG if quiet else logging.ERROR
        try:
            done = self.runner(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            log.log(level, "`%s` failed: %s", shlex.join(argv), exc)
            return None
        if done.returncode != 0:
            message = (done.stderr or done.stdout or "").strip().splitlines()
            log.log(level, "`%s` failed (exit %s): %s", shlex.join(argv), done.returncode,
                    message[-1] if message else "")
            return None
        return done
