"""The Docker backend: one warm container per worker, reused across samples (the same fork
server runs inside it), replaced every N samples or when it dies.

The container has no network (``network_mode="none"``), a read-only root file system with tmpfs
scratch space, memory, CPU and process limits, no capabilities, ``no-new-privileges``, and runs
as ``nobody``; none of the host's environment goes in. The server talks over the container's
attached stdin and stdout (Docker multiplexes stdout and stderr in frames with 8-byte headers).
Needs the ``docker`` package (``pip install 'boundary[docker]'``) and a running Docker daemon.
"""

from __future__ import annotations

from typing import Any

from boundary.workers.sandbox.framing import BOOTSTRAP, Closed, wait_readable
from boundary.workers.sandbox.options import SANDBOX_ENV, SandboxOptions

USER = "65534:65534"
"""nobody: the container's processes run unprivileged."""

SHM_MB = 16
"""Size of the container's /dev/shm (MiB)."""

LABEL = "org.boundary.sandbox"
"""Label on every container this backend creates (to find leftovers)."""


def container_config(options: SandboxOptions) -> dict[str, Any]:
    """``containers.create`` arguments: the isolation of a Docker sandbox."""
    return {
        "image": options.docker_image,
        "command": ["python3", "-S", "-c", BOOTSTRAP, "server"],
        "stdin_open": True,
        "tty": False,
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {
            "/tmp": f"rw,nosuid,nodev,size={options.scratch_mb}m,mode=1777",
            "/dev/shm": f"rw,nosuid,nodev,noexec,size={SHM_MB}m,mode=1777",
        },
        "mem_limit": f"{options.total_memory_mb}m",
        "memswap_limit": f"{options.total_memory_mb}m",
        "nano_cpus": int(options.docker_cpus * 1e9),
        "pids_limit": options.processes + 16,
        "user": USER,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "environment": dict(SANDBOX_ENV),
        "working_dir": "/tmp",
        "hostname": "sandbox",
        "ipc_mode": "private",
        "labels": {LABEL: "1"},
    }


class DockerChannel:
    """The container's attached stdin (raw) and stdout (in Docker's frames)."""

    def __init__(self, container: Any, attached: Any):
        self.container = container
        self._attached = attached
        self._sock = getattr(attached, "_sock", attached)
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._open = True
        self.pid = 0

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._open = False
            raise Closed(str(exc)) from None

    def read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._stdout) < size:
            self._read_frame(deadline)
        data = bytes(self._stdout[:size])
        del self._stdout[:size]
        return data

    def _read_frame(self, deadline: float) -> None:
        header = self._recv(8, deadline)
        body = self._recv(int.from_bytes(header[4:8], "big"), deadline)
        if header[0] == 2:
            self._stderr = (self._stderr + body)[-4000:]
        else:
            self._stdout += body

    def _recv(self, size: int, deadline: float) -> bytes:
        chunks = []
        while size:
            wait_readable(self._sock.fileno(), deadline)
            chunk = self._sock.recv(min(size, 1 << 20))
            if not chunk:
                self._open = False
                raise Closed("the container exited")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def alive(self) -> bool:
        return self._open

    def stderr_tail(self, limit: int = 2000) -> str:
        return self._stderr[-limit:].decode("utf-8", "replace").strip()

    def close(self) -> None:
        self._open = False
        for step in (self.container.kill, lambda: self.container.remove(force=True)):
            try:
                step()
            except Exception:  # noqa: BLE001 - already gone, or the daemon went away: nothing to undo
                pass
        try:
            self._attached.close()
        except OSError:
            pass


class DockerBackend:
    name = "docker"

    def __init__(self, options: SandboxOptions, client: Any = None):
        self.options = options
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            try:
                import docker
            except ImportError:
                raise RuntimeError("the docker package is not installed (pip install 'boundary[docker]')") from None
            self._client = docker.from_env()
        return self._client

    def launch(self) -> DockerChannel:
        client = self.client()
        client.ping()
        container = client.containers.create(**container_config(self.options))
        try:
            attached = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            container.start()
        except Exception:
            container.remove(force=True)
            raise
        return DockerChannel(container, attached)

    def server_config(self) -> dict[str, Any]:
        # Processes are bounded by the container's pids limit (RLIMIT_NPROC would count every
        # container running as nobody on the host); packages are the image's own.
        return self.options.server_config(limits=self.options.limits(processes=False), site_paths=None)

    def explain(self, channel: DockerChannel | None, problem: str) -> str:
        stderr = channel.stderr_tail() if channel is not None else ""
        text = stderr.splitlines()[-1] if stderr else problem
        if "ImageNotFound" in problem or "No such image" in problem:
            text = f"image {self.options.docker_image} not found (docker pull {self.options.docker_image})"
        elif "DockerException" in problem or "Connection" in problem or "FileNotFoundError" in problem:
            text = f"cannot reach the Docker daemon ({problem.split(':', 1)[-1].strip()[:200]})"
        return f"docker sandbox cannot start: {text}"

    def describe(self) -> dict[str, Any]:
        return {"image": self.options.docker_image, "user": USER}

    def close(self) -> None:
        pass
