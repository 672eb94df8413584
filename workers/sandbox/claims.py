"""Host resources a sandbox holds alone, each claimed with a lock file: a uid slot (sandboxes
started by root run their candidate and judge as two uids of their slot, so that RLIMIT_NPROC,
counted per uid, bounds each sandbox on its own, and the candidate can neither signal nor
trace the judge), and a CPU to run on."""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from boundary.api.errors import GradingError


def lock_dir() -> Path:
    """Where slot locks live: /run (root's, cleared at boot) when writable, else the temp dir."""
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    return base / "boundary-sandbox"


class _Held:
    """A claim: held while its lock file's descriptor ``fd`` is open."""

    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the lock
            self.fd = -1


@dataclass
class UidSlot(_Held):
    slot: int
    candidate_uid: int
    judge_uid: int
    fd: int


def _lock(directory: Path, name: str) -> int | None:
    """A descriptor holding the lock file ``name``, or None if another process holds it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_slot(first_uid: int, slots: int, directory: Path | None = None) -> UidSlot:
    """The first free slot; held until ``release()`` or the process exits."""
    directory = directory or lock_dir()
    for slot in range(slots):
        uid = first_uid + 2 * slot
        fd = _lock(directory, f"uid-{uid}.lock")
        if fd is not None:
            return UidSlot(slot, uid, uid + 1, fd)
    raise GradingError(f"all {slots} sandbox uid slots are in use (locks in {directory})")


@dataclass
class CpuClaim(_Held):
    cpu: int
    fd: int


def claim_cpu(directory: Path | None = None) -> CpuClaim | None:
    """A CPU of this process's affinity set that no other sandbox on the machine holds; None
    when every one is held (more sandboxes than CPUs: those left over are not pinned), or when
    the lock folder cannot be used (another user's, on a shared machine): pinning is only an
    optimization."""
    directory = directory or lock_dir()
    try:
        for cpu in sorted(os.sched_getaffinity(0)):
            fd = _lock(directory, f"cpu-{cpu}.lock")
            if fd is not None:
                return CpuClaim(cpu, fd)
    except OSError:
        pass
    return None
