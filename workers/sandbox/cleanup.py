"""Cleanup after every sample: its processes killed and waited for (by uid where there is one),
System V IPC objects removed, the scratch space remounted or wiped. A cleanup that fails ends
the server. Standard library only (run in the server; see docs/sandbox.md)."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import shutil
import signal
import time
from collections.abc import Callable

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.candidate import describe
    from boundary.workers.sandbox.hardening import PR_SET_PDEATHSIG, _libc, become, prctl


KILL_WAIT_S = 30.0
"""Seconds the server waits for a sample's killed processes to exit (freeing gigabytes takes
a while) before it gives up on the sandbox."""


CANDIDATE_EXIT_S = 2.0
"""Seconds the server waits for a killed candidate to exit before looking for it in /proc."""


class CleanupFailed(Exception):
    """What a sample left behind could not be removed: the server answers, then exits, and the
    host starts a fresh sandbox for the next sample."""


def proc_table() -> dict[int, tuple[int, str]]:
    """pid: (parent pid, state) for every live process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(root: int, table: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _pids() -> set[int]:
    """Every process /proc lists (in a PID namespace: the sandbox's own)."""
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


_IPC_RMID = 0


def _sysv_ids(kind: str) -> list[int]:
    """Ids of the System V objects of one kind (read raw: four system calls, not a text file's
    seven, on every sample)."""
    try:
        fd = os.open(f"/proc/sysvipc/{kind}", os.O_RDONLY)
    except OSError:
        return []
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    column = 1  # "key <id> ..." in all three files
    return [int(line.split()[column]) for line in b"".join(chunks).splitlines()[1:] if line.strip()]


def sysv_leftovers() -> dict[str, list[int]]:
    return {kind: ids for kind in ("shm", "msg", "sem") if (ids := _sysv_ids(kind))}


def remove_sysv(leftovers: dict[str, list[int]]) -> None:
    for ident in leftovers.get("shm", []):
        _libc.shmctl(ident, _IPC_RMID, None)
    for ident in leftovers.get("msg", []):
        _libc.msgctl(ident, _IPC_RMID, None)
    for ident in leftovers.get("sem", []):
        _libc.semctl(ident, 0, _IPC_RMID)


def wipe(path: str) -> None:
    """Remove everything inside ``path`` (not ``path`` itself); any entry that cannot be removed
    raises (OSError, or RecursionError for a tree deeper than the interpreter's stack)."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


MNT_DETACH = 2


MS_NOSUID, MS_NODEV = 2, 4


def mount_tmpfs(path: str, size: int, inodes: int, mode: int) -> None:
    """Replace the file system at ``path`` with a new, empty tmpfs of ``size`` bytes and at most
    ``inodes`` files, its root folder of ``mode``. The old one is detached, and freed by the
    kernel with whatever it held (nothing of the sample runs any more)."""
    target = path.encode()
    if _libc.umount2(target, MNT_DETACH) != 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: nothing mounted
        raise OSError(ctypes.get_errno(), f"umount {path}: {os.strerror(ctypes.get_errno())}")
    options = f"size={size},nr_inodes={inodes},mode={mode:o}".encode()
    if _libc.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {path}: {os.strerror(ctypes.get_errno())}")


def scratch_state(path: str, workdir: str) -> tuple:
    """What changes when anything is done in the file system at ``path``: its files and blocks
    in use, and the times, mode, owner and extended attributes of its root folder (and of
    ``workdir`` within it): any file made, left, renamed, chmodded or tagged shows here."""
    fs = os.statvfs(path)
    folders = [path] + ([workdir] if os.path.dirname(workdir) == path else [])
    stats = []
    for folder in folders:
        try:
            st = os.lstat(folder)
            stats.append((st.st_ino, st.st_mode, st.st_uid, st.st_nlink, st.st_mtime_ns, st.st_ctime_ns,
                          tuple(os.listxattr(folder, follow_symlinks=False))))
        except OSError:
            stats.append(None)
    return fs.f_files - fs.f_ffree, fs.f_blocks - fs.f_bfree, *stats


def make_workdir(workdir: str, uid: int | None) -> None:
    """The sample's working directory: new, empty, private to the candidate's uid."""
    os.mkdir(workdir, 0o700)
    if uid is not None:
        os.chown(workdir, uid, uid)


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` at once: ``kill(-1)`` made with that real and effective
    uid reaches exactly the processes of that uid (but pid 1, the server), and a process forking
    at that moment cannot leave a child unsignalled. The server keeps root as its saved uid and
    takes it back, and the parent-death signal (bubblewrap's ``--die-with-parent``) that a change
    of uid clears."""
    os.setresuid(uid, uid, 0)
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:  # nothing of the sample is left
        pass
    finally:
        os.setresuid(0, 0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_and_wait(pid: int) -> bool:
    """SIGKILL process ``pid`` (a candidate: not the server's child, so not reaped here) and
    wait until it has exited. False if it could not be watched or did not exit in time."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already (reaped), or pidfd unsupported: the slow path looks
        return False
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(int(CANDIDATE_EXIT_S * 1000)))
    except OSError:
        return False
    finally:
        os.close(fd)


class Cleanup:
    """The server's cleanup: after each sample (``after_sample``), and a first scratch space."""

    def __init__(self, config: dict, reap: Callable[[], None], kept: Callable[[], set]):
        self.config = config
        self.reap = reap
        """Collects the server's finished children (a zygote or the judge that died)."""
        self.kept = kept
        """The pids that are not the sample's: the server, the judge, the zygotes."""
        self.pristine: dict[str, tuple] = {}
        """``scratch_state`` of each scratch mount when it was new."""

    def after_sample(self, candidate: int | None) -> None:
        """Kill every process of the sample, wait until they have exited, and give the next
        sample a fresh scratch space. CleanupFailed when that cannot be done. The candidate is
        killed and waited for first; only if other processes are left are they looked for
        (by uid where there is one: docs/sandbox.md)."""
        uid = self.config.get("candidate_uid")
        keep = {*self.kept(), candidate}
        if candidate is not None and _kill_and_wait(candidate):
            self.reap()
            if _pids() <= keep:  # the usual case: the candidate, now dead, made no process
                self.reset_scratch()
                return
        if uid is not None:
            kill_uid(uid)
        self.reap()
        if not _pids() <= keep:
            self._wait_for_strays(uid)
        self.reset_scratch()

    def _wait_for_strays(self, uid: int | None) -> None:
        deadline = time.monotonic() + KILL_WAIT_S
        pause = 0.0002
        while True:
            keep = self.kept()
            table = proc_table()
            strays = [p for p in descendants(os.getpid(), table) if p not in keep and table[p][1] != "Z"]
            self.reap()
            if not strays:
                return
            if time.monotonic() > deadline:
                raise CleanupFailed(f"{len(strays)} of the sample's processes did not exit within {KILL_WAIT_S:g}s")
            if uid is not None:
                kill_uid(uid)
            else:
                for pid in strays:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def reset_scratch(self) -> None:
        """A fresh scratch space for the next sample: new tmpfs mounts where the server may mount
        (nothing a sample leaves, however deep, sticky or many, costs the next one anything), else
        a wipe that raises CleanupFailed if anything is left; then System V IPC objects."""
        mounts = self.config.get("scratch_mounts")
        workdir = self.config["workdir"]
        try:
            if mounts:
                if self.pristine and all(scratch_state(path, workdir) == self.pristine.get(path)
                                         for path, *_ in mounts):
                    return  # nothing was written, renamed, chmodded or tagged: the same as new
                for path, size, inodes, mode in mounts:
                    mount_tmpfs(path, size, inodes, mode)
            else:
                for path in self.config.get("wipe", ()):
                    wipe(path)
            make_workdir(workdir, self.config.get("candidate_uid"))
            if mounts:
                self.pristine = {path: scratch_state(path, workdir) for path, *_ in mounts}
        except Exception as exc:  # noqa: BLE001 - whatever failed, the next sample must not see it
            raise CleanupFailed(f"the scratch space could not be reset ({describe(exc)})") from None
        leftovers = sysv_leftovers()
        if leftovers:
            self._remove_sysv(leftovers)

    def _remove_sysv(self, leftovers: dict[str, list[int]]) -> None:
        uid = self.config.get("candidate_uid")
        if uid is None:
            remove_sysv(leftovers)
            return
        pid = os.fork()
        if pid == 0:
            try:
                become(uid)
                remove_sysv(leftovers)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

