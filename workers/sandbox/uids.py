"""Host uids for sandboxes started by root: each sandbox holds a slot (a lock file) and runs its
candidate and judge as two uids of that slot, so that RLIMIT_NPROC (counted per uid) bounds
each sandbox on its own, and the candidate can neither signal nor trace the judge."""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from api.errors import GradingError


def lock_dir() -> Path:
    """Where slot locks live: /run (root's, cleared at boot) when writable, else the temp dir."""
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    return base / "boundary-sandbox"


@dataclass
class UidSlot:
    slot: int
    candidate_uid: int
    judge_uid: int
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the lock
            self.fd = -1


def claim_slot(first_uid: int, slots: int, directory: Path | None = None) -> UidSlot:
    """The first free slot; held until ``release()`` or the process exits."""
    directory = directory or lock_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for slot in range(slots):
        uid = first_uid + 2 * slot
        fd = os.open(directory / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidSlot(slot, uid, uid + 1, fd)
    raise GradingError(f"all {slots} sandbox uid slots are in use (locks in {directory})")
