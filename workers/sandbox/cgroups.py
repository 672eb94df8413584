"""A cgroup for one sandbox: a memory cap (swap included) and a pids cap on everything the
sandbox runs together, which rlimits cannot give; v2 where the controller is there, else v1.
``problems`` says why none can be made. Details: docs/sandbox.md."""

from __future__ import annotations

import errno
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "boundary-sandbox"
"""Name of every sandbox cgroup: ``boundary-sandbox-<pid of the process that made it>-<n>``."""

CONTROLLERS = ("memory", "pids")
"""The controllers a sandbox cgroup uses."""

SERVER_OOM_SCORE_ADJ = -900
"""``oom_score_adj`` of the sandbox's own processes (bwrap, the server, its zygotes and the
judge, which inherit it): when the cgroup runs out of memory, the kernel's OOM killer prefers
the largest process, shifted by this; a candidate raises its own score (to 1000), so it is the
one killed, not the server. Not -1000: a server that does bloat can still be killed."""

REMOVE_TIMEOUT_S = 5.0
"""Seconds ``remove`` waits for a killed sandbox's processes to leave its cgroup."""

_counter = itertools.count(1)

JOIN_SCRIPT = (
    'n=$1; shift\n'
    'while [ "$n" -gt 0 ]; do\n'
    '  echo $$ > "$1/cgroup.procs" || { echo "boundary: cannot join the cgroup $1" >&2; exit 125; }\n'
    '  shift; n=$((n - 1))\n'
    'done\n'
    'if [ -n "$1" ]; then echo "$1" > /proc/self/oom_score_adj 2>/dev/null; fi\n'
    'shift\n'
    'exec "$@"\n'
)
"""What ``/bin/sh -c`` runs before the sandbox: ``N DIR... ADJ COMMAND...``: join the N cgroup
folders (this shell's pid, which ``exec`` hands to the command), lower its OOM score (``ADJ``,
empty for none; a failure to lower it, without CAP_SYS_RESOURCE, is ignored), run the command."""


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy, and where this process sits in it."""

    mount: Path
    version: int
    controllers: frozenset[str]
    """v1: the controllers bound to it; v2: those the parent's cgroup.controllers offers."""
    here: Path
    """This process's cgroup folder in it (the parent of a sandbox's)."""


def _unescape(path: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline, backslash as \\ooo)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_mounts(mountinfo: str) -> list[tuple[Path, str, int, frozenset[str], bool]]:
    """(mount point, root in the hierarchy, version, v1 controllers, read-only) of each
    cgroup file system in ``mountinfo``."""
    found = []
    for line in mountinfo.splitlines():
        head, _sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) < 6 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        readonly = "ro" in fields[5].split(",")
        options = frozenset(rest[2].split(","))
        version = 2 if rest[0] == "cgroup2" else 1
        controllers = frozenset(options & set(CONTROLLERS)) if version == 1 else frozenset()
        found.append((Path(_unescape(fields[4])), _unescape(fields[3]), version, controllers, readonly))
    return found


def parse_membership(proc_cgroup: str) -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under ``""`` its v2 path."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _id, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _below(path: str, root: str) -> str | None:
    """``path`` relative to the mount's root, or None when the mount does not reach it."""
    if root == "/":
        return path.lstrip("/")
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return path[len(root):].lstrip("/")
    return None


def hierarchies(mountinfo: str, proc_cgroup: str) -> list[Hierarchy]:
    """The writable cgroup hierarchies that hold this process's cgroup, v2 first."""
    member = parse_membership(proc_cgroup)
    found = []
    for mount, root, version, controllers, readonly in parse_mounts(mountinfo):
        if readonly:
            continue
        key = "" if version == 2 else next((c for c in controllers if c in member), None)
        relative = _below(member[key], root) if key in member else None
        if relative is None:
            continue
        here = mount / relative
        if version == 2:
            offered = _read(here / "cgroup.controllers")
            controllers = frozenset(set((offered or "").split()) & set(CONTROLLERS))
        found.append(Hierarchy(mount, version, controllers, here))
    return sorted(found, key=lambda h: -h.version)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def enable(hierarchy: Hierarchy, controllers: list[str]) -> str | None:
    """Enable ``controllers`` for the children of this process's v2 cgroup; why not, if not.
    (A cgroup that holds processes, other than the root, cannot enable them: cgroup v2's
    no-internal-process rule; the worker then needs a delegated cgroup of its own.)"""
    enabled = set((_read(hierarchy.here / "cgroup.subtree_control") or "").split())
    missing = [c for c in controllers if c not in enabled]
    if not missing:
        return None
    try:
        (hierarchy.here / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    except OSError as exc:
        return f"cannot enable {'+'.join(missing)} in {hierarchy.here}/cgroup.subtree_control: {_why(exc)}"
    return None


def limit_files(version: int, controller: str, memory_bytes: int, pids: int) -> list[tuple[str, str]]:
    """The files that set a controller's limits, in order, with their values. Swap is counted
    into the memory cap: none of it on top (as Docker's memswap_limit = mem_limit)."""
    if controller == "pids":
        return [("pids.max", str(pids))]
    if version == 2:
        return [("memory.max", str(memory_bytes)), ("memory.swap.max", "0")]
    return [("memory.limit_in_bytes", str(memory_bytes)), ("memory.memsw.limit_in_bytes", str(memory_bytes))]


def _optional(name: str) -> bool:
    """Limit files a kernel may lack (no swap accounting) without the cap being void."""
    return name in ("memory.swap.max", "memory.memsw.limit_in_bytes")


def remove_stale(parent: Path) -> None:
    """Remove sandbox cgroups left in ``parent`` by processes that are gone (a crashed worker);
    one that still holds processes refuses (EBUSY) and stays."""
    try:
        entries = [e for e in parent.iterdir() if e.name.startswith(PREFIX + "-")]
    except OSError:
        return
    for entry in entries:
        try:
            owner = int(entry.name.split("-")[2])
            os.kill(owner, 0)
            continue  # its maker is alive: its own to remove
        except (IndexError, ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        try:
            entry.rmdir()
        except OSError:
            pass


@dataclass
class SandboxCgroup:
    """The cgroup folders of one sandbox (one per hierarchy used), and why a controller is
    missing where one is."""

    name: str
    memory_bytes: int
    pids: int
    dirs: dict[str, Path] = field(default_factory=dict)
    """Folder of each controller in use (memory and pids may share one, in cgroup v2)."""
    versions: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def folders(self) -> list[Path]:
        return list(dict.fromkeys(self.dirs.values()))

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this cgroup (unchanged where there is none)."""
        if not self.dirs:
            return argv
        adjust = str(SERVER_OOM_SCORE_ADJ) if "memory" in self.dirs else ""
        folders = [str(d) for d in self.folders]
        return ["/bin/sh", "-c", JOIN_SCRIPT, PREFIX, str(len(folders)), *folders, adjust, *argv]

    def peak_bytes(self) -> int | None:
        """Most memory the sandbox has held at once (v2 memory.peak, v1 max_usage_in_bytes)."""
        folder = self.dirs.get("memory")
        if folder is None:
            return None
        name = "memory.peak" if self.versions["memory"] == 2 else "memory.max_usage_in_bytes"
        value = _read(folder / name)
        return int(value) if value and value.isdigit() else None

    def describe(self) -> str:
        """Which cgroup applies, with its limits, or why none, in one line."""
        parts = []
        for folder in self.folders:
            names = [c for c in CONTROLLERS if self.dirs.get(c) == folder]
            limits = [f"memory {self.memory_bytes >> 20} MiB, swap included" if c == "memory" else f"pids {self.pids}"
                      for c in names]
            parts.append(f"{folder} (v{self.versions[names[0]]}: {'; '.join(limits)})")
        if not parts:
            return f"none, rlimits only: {'; '.join(self.problems) or 'no cgroup'}"
        return ", ".join(parts) + (f"; not capped: {'; '.join(self.problems)}" if self.problems else "")

    def remove(self) -> bool:
        """Kill whatever still runs in the cgroup, wait for it to leave, and remove the
        folders; False when one is still there after REMOVE_TIMEOUT_S (found as stale later)."""
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        removed = True
        for folder in self.folders:
            removed &= _kill_and_remove(folder, deadline)
        self.dirs.clear()
        return removed


def _kill_and_remove(folder: Path, deadline: float) -> bool:
    while True:
        _kill_all(folder)
        try:
            folder.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
        time.sleep(0.01)


def _kill_all(folder: Path) -> None:
    """SIGKILL every process in ``folder``: v2's cgroup.kill, else one by one through a pidfd,
    which cannot reach a process that took the pid of one that exited meanwhile."""
    kill = folder / "cgroup.kill"
    if kill.exists():
        try:
            kill.write_text("1")
            return
        except OSError:
            pass
    for pid in (_read(folder / "cgroup.procs") or "").split():
        try:
            fd = os.pidfd_open(int(pid))
        except OSError:
            continue
        try:
            if _member(int(pid), folder):  # still listed, and the pidfd holds the pid: the same process
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(fd)


def _member(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` is (still) in ``folder``: its cgroup.procs lists it."""
    return str(pid) in (_read(folder / "cgroup.procs") or "").split()


def _make(hierarchy: Hierarchy, name: str, controllers: list[str], memory_bytes: int, pids: int) -> Path | str:
    """The new cgroup folder with its limits set, or why it could not be made."""
    if hierarchy.version == 2:
        problem = enable(hierarchy, controllers)
        if problem:
            return problem
    folder = hierarchy.here / name
    try:
        folder.mkdir()
    except OSError as exc:
        return f"cannot create {folder}: {_why(exc)}"
    for controller in controllers:
        for file, value in limit_files(hierarchy.version, controller, memory_bytes, pids):
            try:
                (folder / file).write_text(value)
            except OSError as exc:
                if _optional(file) and exc.errno in (errno.ENOENT, errno.EACCES, errno.EINVAL):
                    continue
                try:
                    folder.rmdir()
                except OSError:
                    pass
                return f"cannot set {folder}/{file}: {_why(exc)}"
    return folder


def create(memory_bytes: int, pids: int, mountinfo: str | None = None, proc_cgroup: str | None = None) -> SandboxCgroup:
    """A new cgroup for one sandbox, capped at ``memory_bytes`` and ``pids`` tasks, in each
    hierarchy that offers a controller (v2 first). Never raises: what could not be made is in
    ``problems``."""
    cgroup = SandboxCgroup(f"{PREFIX}-{os.getpid()}-{next(_counter)}", memory_bytes, pids)
    try:
        mountinfo = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
        proc_cgroup = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    except OSError as exc:
        cgroup.problems.append(f"cannot read this process's cgroups: {_why(exc)}")
        return cgroup
    found = hierarchies(mountinfo, proc_cgroup)
    for hierarchy in found:
        wanted = [c for c in CONTROLLERS if c in hierarchy.controllers and c not in cgroup.dirs]
        if not wanted:
            continue
        remove_stale(hierarchy.here)
        made = _make(hierarchy, cgroup.name, wanted, memory_bytes, pids)
        if isinstance(made, str):
            cgroup.problems.append(made)
            continue
        for controller in wanted:
            cgroup.dirs[controller] = made
            cgroup.versions[controller] = hierarchy.version
    for controller in CONTROLLERS:
        if controller not in cgroup.dirs and not any(controller in p for p in cgroup.problems):
            cgroup.problems.append(f"no writable {controller} controller")
    return cgroup
