"""What a sandbox may use, and the environment its programs see."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from boundary.api import defaults
from boundary.api.errors import ConfigError

SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
"""The whole environment inside a sandbox: none of the host's variables. The hash seed is fixed
so that expected outputs recorded in one sandbox (set orders...) hold in the next."""

SITE_DIR = "/opt/boundary/site"
"""Where the packages a sandbox may import are mounted (read-only) inside it."""


@dataclass(frozen=True)
class SandboxOptions:
    """Limits and layout shared by every backend (see boundary.api.defaults for each value's reason)."""

    memory_mb: int = defaults.SANDBOX_MEMORY_MB
    processes: int = defaults.SANDBOX_PROCESSES
    file_mb: int = defaults.SANDBOX_FILE_MB
    open_files: int = defaults.SANDBOX_OPEN_FILES
    scratch_mb: int = defaults.SANDBOX_SCRATCH_MB
    scratch_inodes: int = defaults.SANDBOX_SCRATCH_INODES
    total_memory_mb: int = defaults.SANDBOX_TOTAL_MEMORY_MB
    recycle_samples: int = defaults.SANDBOX_RECYCLE_SAMPLES
    first_uid: int = defaults.SANDBOX_FIRST_UID
    uid_slots: int = defaults.SANDBOX_UID_SLOTS
    packages: tuple[str, ...] = defaults.SANDBOX_PACKAGES
    preload: tuple[str, ...] = defaults.SANDBOX_PRELOAD
    docker_image: str = defaults.SANDBOX_DOCKER_IMAGE
    docker_cpus: float = defaults.SANDBOX_DOCKER_CPUS
    seccomp: bool = True
    pin_cpu: bool = defaults.SANDBOX_PIN_CPU
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Server settings for tests (e.g. a smaller plan cache)."""

    def __post_init__(self) -> None:
        for name in ("memory_mb", "processes", "file_mb", "open_files", "scratch_mb", "scratch_inodes",
                     "total_memory_mb", "recycle_samples", "uid_slots"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sandbox option {name} must be >= 1, got {getattr(self, name)}")

    def limits(self, processes: bool = True) -> dict[str, int | None]:
        """The rlimits of a sample's processes, as the server applies them."""
        return {
            "memory_bytes": self.memory_mb << 20,
            "file_bytes": self.file_mb << 20,
            "open_files": self.open_files,
            "processes": self.processes if processes else None,
        }

    def server_config(self, **overrides: Any) -> dict[str, Any]:
        """The sandbox server's start message, with a backend's own settings."""
        config: dict[str, Any] = {
            "candidate_uid": None,
            "judge_uid": None,
            "limits": self.limits(),
            "judge_memory_bytes": max(self.memory_mb, 4096) << 20,
            "workdir": "/tmp/work",
            "wipe": ["/tmp", "/dev/shm"],
            "scratch_mounts": None,
            "site_paths": [SITE_DIR],
            "preload": [m for m in self.preload if m not in self.packages],
            "heavy": [m for m in self.preload if m in self.packages],
            "judge_preload": [m for m in self.preload if m not in self.packages],
            "seccomp": self.seccomp,
            "subreaper": False,
            "plan_cache": 1024,
            "plan_cache_bytes": 256 << 20,
            "cpu": None,
        }
        config.update(overrides)
        config.update(self.extra)
        return config
