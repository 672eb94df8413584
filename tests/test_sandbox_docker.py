"""The Docker backend at its API boundary (no Docker daemon runs here): the container it asks
for, and jobs through Docker's attach stream, with a fake client standing in for the docker SDK
whose "container" runs the real sandbox server locally. Also: choosing a backend, and refusing to
run code when none can start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from boundary.api.errors import ConfigError, GradingError
from boundary.api.types import CodeJob
from boundary.workers.sandbox import SandboxOptions, open_sandbox
from boundary.workers.sandbox.docker import container_config
from boundary.workers.sandbox.framing import BOOTSTRAP
from boundary.workers.sandbox.options import SANDBOX_ENV

PLAN = {"mode": "function", "setup": "", "names": ["f"], "load_timeout_s": 5.0, "record_timeout_s": 5.0,
        "groups": [{"name": "check", "kind": "script", "code": "assert f(2) == 4\n", "timeout_s": 3.0}]}


class FakeAttached:
    """What ``attach_socket`` returns: a SocketIO-like object holding the raw socket."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def close(self) -> None:
        self._sock.close()


class FakeContainer:
    """Runs the container's command as a local process and frames its output as Docker does
    (8-byte headers: stream, 0, 0, 0, length)."""

    def __init__(self, config: dict[str, Any], workdir: Path):
        self.config, self.workdir, self.events = config, workdir, []
        self.process: subprocess.Popen | None = None

    def attach_socket(self, params: dict[str, Any]) -> FakeAttached:
        self.events.append(("attach", params))
        ours, self._theirs = socket.socketpair()
        return FakeAttached(ours)

    def start(self) -> None:
        self.events.append(("start",))
        command = [sys.executable, *self.config["command"][1:]]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=self.config["environment"], cwd=self.workdir, start_new_session=True)
        for target in (self._pump_in, lambda: self._pump_out(self.process.stdout, 1),
                       lambda: self._pump_out(self.process.stderr, 2)):
            threading.Thread(target=target, daemon=True).start()

    def _pump_in(self) -> None:
        while chunk := self._theirs.recv(1 << 16):
            self.process.stdin.write(chunk)
            self.process.stdin.flush()

    def _pump_out(self, stream, kind: int) -> None:  # noqa: ANN001
        while chunk := os.read(stream.fileno(), 1 << 16):
            self._theirs.sendall(bytes([kind, 0, 0, 0]) + len(chunk).to_bytes(4, "big") + chunk)

    def kill(self) -> None:
        self.events.append(("kill",))
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def remove(self, force: bool = False) -> None:
        self.events.append(("remove", force))


class FakeClient:
    def __init__(self, workdir: Path, reachable: bool = True):
        self.workdir, self.reachable = workdir, reachable
        self.created: list[FakeContainer] = []
        self.containers = self

    def ping(self) -> bool:
        if not self.reachable:
            raise ConnectionError("Error while fetching server API version: connection refused")
        return True

    def create(self, **config: Any) -> FakeContainer:
        container = FakeContainer(config, self.workdir)
        self.created.append(container)
        return container


def test_the_container_is_isolated() -> None:
    config = container_config(SandboxOptions(total_memory_mb=1024, processes=32, docker_cpus=0.5, scratch_mb=32))
    assert config["network_mode"] == "none" and config["read_only"] is True
    assert config["tmpfs"]["/tmp"].startswith("rw,nosuid,nodev,size=32m") and "/dev/shm" in config["tmpfs"]
    assert (config["mem_limit"], config["memswap_limit"], config["nano_cpus"], config["pids_limit"]) == (
        "1024m", "1024m", 500_000_000, 48)
    assert config["user"] == "65534:65534" and config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges"] and config["environment"] == SANDBOX_ENV
    assert config["command"][-3:] == ["-c", BOOTSTRAP, "server"] and config["stdin_open"] and not config["tty"]


def test_jobs_run_through_the_attached_stream(tmp_path: Path) -> None:
    client = FakeClient(tmp_path)
    # The fake runs the server on this machine: its scratch space must be the test's folder.
    options = SandboxOptions(extra={"workdir": str(tmp_path / "work"), "wipe": [str(tmp_path)], "subreaper": True})
    sandbox = open_sandbox("docker", options, docker_client=client)
    try:
        assert sandbox.backend == "docker" and sandbox.info["ready"]
        right = sandbox.run(CodeJob("def f(x):\n    return x * x\n", "k", PLAN, 10.0))
        wrong = sandbox.run(CodeJob("def f(x):\n    return x + 3\n", "k", PLAN, 10.0))
        assert (right["status"], wrong["status"]) == ("passed", "failed")
    finally:
        sandbox.close()
    (container,) = client.created
    assert container.config == container_config(options)
    assert container.events[0] == ("attach", {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    assert container.events[1] == ("start",) and ("remove", True) in container.events


def test_an_unreachable_daemon_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="docker sandbox cannot start: cannot reach the Docker daemon"):
        open_sandbox("docker", docker_client=FakeClient(tmp_path, reachable=False))
    with pytest.raises(GradingError, match="cannot reach the Docker daemon"):  # the real SDK, no daemon here
        open_sandbox("docker", SandboxOptions())


def test_no_sandbox_means_no_code_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    with pytest.raises(GradingError) as caught:
        open_sandbox("auto", docker_client=FakeClient(tmp_path, reachable=False))
    message = str(caught.value)
    assert message.startswith("no sandbox can start: bwrap sandbox: bwrap is not installed")
    assert "docker sandbox cannot start" in message and "--unsafe-no-sandbox" in message
    with pytest.raises(ConfigError, match="--unsafe-no-sandbox"):
        open_sandbox("none")
    with pytest.raises(ConfigError, match="unknown sandbox 'firejail'"):
        open_sandbox("firejail")


def test_unsafe_no_sandbox_runs_when_asked(tmp_path: Path) -> None:
    with open_sandbox("bwrap", unsafe_no_sandbox=True) as unsafe:
        assert unsafe.backend == "none"
        assert unsafe.run(CodeJob("def f(x):\n    return 4\n", "k", PLAN, 10.0))["status"] == "passed"
