"""The code sandbox: one interface (boundary.api.types.Sandbox), two backends, chosen by configuration.

- ``bwrap``: bubblewrap namespaces (Debian package ``bubblewrap``), the default where it starts.
- ``docker``: one warm container per worker (docker SDK): no network, read-only root, tmpfs
  scratch, memory, CPU and process limits, a non-root user.
- ``auto``: bwrap if it starts, else Docker if a daemon answers.

If none can start, ``open_sandbox`` refuses (GradingError, saying which check failed) unless
the caller asks for ``none``, the explicit ``--unsafe-no-sandbox``. Inside every backend runs
the same fork server (``boundary.workers.sandbox.server``).
"""

from __future__ import annotations

from boundary.api import defaults
from boundary.api.errors import ConfigError, GradingError
from boundary.workers.sandbox.client import ForkServer
from boundary.workers.sandbox.options import SandboxOptions

BACKENDS = ("auto", "bwrap", "docker", "none")
"""Names accepted by ``open_sandbox`` (``none``: no sandbox, only with explicit consent)."""


def _backend(name: str, options: SandboxOptions, docker_client: object | None = None):  # noqa: ANN202
    if name == "bwrap":
        from boundary.workers.sandbox.bwrap import BwrapBackend

        return BwrapBackend(options)
    if name == "docker":
        from boundary.workers.sandbox.docker import DockerBackend

        return DockerBackend(options, client=docker_client)
    from boundary.workers.sandbox.unsafe import UnsafeBackend

    return UnsafeBackend(options)


def open_sandbox(
    backend: str = defaults.SANDBOX,
    options: SandboxOptions | None = None,
    *,
    unsafe_no_sandbox: bool = False,
    docker_client: object | None = None,
) -> ForkServer:
    """A started sandbox. ``unsafe_no_sandbox`` runs code with no isolation at all."""
    options = options or SandboxOptions()
    if unsafe_no_sandbox:
        backend = "none"
    elif backend == "none":
        raise ConfigError("running code without a sandbox needs the explicit --unsafe-no-sandbox")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown sandbox '{backend}' (known: {', '.join(BACKENDS[:-1])})")
    names = ("bwrap", "docker") if backend == "auto" else (backend,)
    problems = []
    for name in names:
        server = ForkServer(_backend(name, options, docker_client), options)
        try:
            server.start()
            return server
        except GradingError as exc:
            server.close()
            problems.append(str(exc))
    hint = "install bubblewrap (or start Docker), or pass --unsafe-no-sandbox to run code without isolation"
    raise GradingError(f"no sandbox can start: {'; '.join(problems)}; {hint}")


__all__ = ["BACKENDS", "ForkServer", "SandboxOptions", "open_sandbox"]
