"""The bubblewrap backend: the server in new PID, network, IPC, UTS (and cgroup) namespaces, on a
read-only root holding /usr (its packages hidden), the interpreter and the allowed packages, with
private tmpfs scratch space; in a cgroup of its own where the host allows it. Why and how:
docs/sandbox.md."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from boundary.api import defaults
from boundary.workers.sandbox import cgroups
from boundary.workers.sandbox.channel import ProcessChannel
from boundary.workers.sandbox.claims import CpuClaim, UidSlot, claim_cpu, claim_slot
from boundary.workers.sandbox.framing import BOOTSTRAP
from boundary.workers.sandbox.interpreter import (
    Interpreter,
    host_interpreter,
    library_env,
    mask,
    stdlib_masks,
    stdlib_mounts,
    system_site_dirs,
)
from boundary.workers.sandbox.options import SANDBOX_ENV, SITE_DIR, SandboxOptions

ROOT_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN")
"""What the server keeps as root inside: switching uids, killing, a scratch directory, tmpfs
mounts (CAP_SYS_ADMIN, confined to the sandbox's mounts). Everything else is dropped."""

SHM_MB = 16
"""Size of the sandbox's /dev/shm (MiB): POSIX semaphores for multiprocessing, little else."""


def package_binds(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(host path, sandbox path) of each allowed package that is installed, with its ``.libs``
    folder (manylinux wheels keep shared libraries there)."""
    binds = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            source = Path(list(spec.submodule_search_locations)[0])
        elif spec.origin:
            source = Path(spec.origin)
        else:
            continue
        binds.append((str(source), f"{SITE_DIR}/{source.name}"))
        libs = source.with_name(f"{source.name}.libs")
        if libs.is_dir():
            binds.append((str(libs), f"{SITE_DIR}/{libs.name}"))
    return binds


def system_binds() -> list[str]:
    """/usr read-only, and /bin, /lib... as the host has them (symlinks into /usr, or folders)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args + ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]


def parent_dirs(targets) -> list[str]:  # noqa: ANN001 - any iterable of paths
    """``--dir`` for the folders above each mount point, world-readable (bwrap would otherwise
    create them with the caller's umask, and the unprivileged uids could not reach the mounts)."""
    made: dict[str, None] = {}
    for target in targets:
        parts = Path(target).parts
        for depth in range(2, len(parts)):
            made[str(Path(*parts[:depth]))] = None
    args = []
    for path in made:
        if path not in ("/usr",) and not path.startswith("/usr/"):
            args += ["--perms", "0755", "--dir", path]
    return args


def bwrap_command(options: SandboxOptions, as_root: bool, interp: Interpreter | None = None) -> list[str]:
    """The bwrap command line of a sandbox running ``interp`` (this process's interpreter)."""
    interp = interp or host_interpreter()
    args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--as-pid-1", "--new-session", "--hostname", "sandbox", "--clearenv"]
    if not as_root:
        args += ["--unshare-user", "--disable-userns"]
    for key, value in {**SANDBOX_ENV, **library_env(interp)}.items():
        args += ["--setenv", key, value]
    args += system_binds()
    binds = stdlib_mounts(interp) + package_binds(options.packages)
    args += parent_dirs(target for _source, target in binds)
    for source, target in binds:
        args += ["--ro-bind", source, target]
    for path in dict.fromkeys([*system_site_dirs(), *stdlib_masks(interp)]):
        args += mask(path)
    args += [
        "--proc", "/proc", "--dev", "/dev",
        "--perms", "1777", "--size", str(SHM_MB << 20), "--tmpfs", "/dev/shm",
        "--size", str(options.scratch_mb << 20), "--tmpfs", "/tmp",
        "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp",
    ]
    if as_root:
        args += ["--cap-drop", "ALL"]
        for capability in ROOT_CAPABILITIES:
            args += ["--cap-add", capability]
    return [*args, "--", interp.sandbox_binary, "-S", "-c", BOOTSTRAP, "server"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def namespace_problem(as_root: bool) -> str | None:
    """A kernel setting that keeps bubblewrap from making its namespaces, if one is found."""
    if _read("/proc/sys/user/max_user_namespaces") == "0" and not as_root:
        return "user namespaces are disabled (sysctl user.max_user_namespaces = 0)"
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0" and not as_root:
        return "unprivileged user namespaces are blocked (sysctl kernel.unprivileged_userns_clone = 0)"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" and not as_root:
        return ("AppArmor blocks unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns"
                " = 1; allow bwrap with an AppArmor profile, or run as root)")
    return None


class BwrapBackend:
    name = "bwrap"

    def __init__(self, options: SandboxOptions):
        self.options = options
        self.as_root = os.geteuid() == 0
        self._slot: UidSlot | None = None
        self._cpu: CpuClaim | None = None
        self._cgroup: cgroups.SandboxCgroup | None = None

    def _new_cgroup(self) -> cgroups.SandboxCgroup:
        """A fresh cgroup for the sandbox about to start, the previous one's processes killed
        and its folders removed (ForkServer stops a sandbox before it launches the next)."""
        self._drop_cgroup()
        pids = self.options.processes + defaults.SANDBOX_PIDS_MARGIN
        self._cgroup = cgroups.create(self.options.total_memory_mb << 20, pids)
        return self._cgroup

    def _drop_cgroup(self) -> None:
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None

    def launch(self) -> ProcessChannel:
        if shutil.which("bwrap") is None:
            raise FileNotFoundError("bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        if self.as_root and self._slot is None:
            self._slot = claim_slot(self.options.first_uid, self.options.uid_slots)
        if self.options.pin_cpu and self._cpu is None:
            self._cpu = claim_cpu()
        argv = self._new_cgroup().wrap(bwrap_command(self.options, self.as_root))
        return ProcessChannel(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})

    def server_config(self) -> dict[str, Any]:
        cpu = self._cpu.cpu if self._cpu is not None else None
        if self._slot is None:
            return self.options.server_config(cpu=cpu)
        inodes = self.options.scratch_inodes
        mounts = [("/tmp", self.options.scratch_mb << 20, inodes, 0o755),  # as bwrap makes them: only
                  ("/dev/shm", SHM_MB << 20, max(64, inodes // 8), 0o1777)]  # /tmp/work is the sample's
        return self.options.server_config(candidate_uid=self._slot.candidate_uid, judge_uid=self._slot.judge_uid,
                                          cpu=cpu, scratch_mounts=mounts)

    def explain(self, channel: ProcessChannel | None, problem: str) -> str:
        """One line saying which check failed."""
        if shutil.which("bwrap") is None:
            return "bwrap sandbox: bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
        stderr = channel.stderr_tail() if channel is not None else ""
        kernel = namespace_problem(self.as_root)
        if kernel:
            return f"bwrap sandbox cannot start: {kernel}"
        last = stderr.splitlines()[-1] if stderr else ""
        return f"bwrap sandbox cannot start: {last or problem}"

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"as_root": self.as_root,
                                "packages": [t for _s, t in package_binds(self.options.packages)]}
        if self._slot is not None:
            info.update(candidate_uid=self._slot.candidate_uid, judge_uid=self._slot.judge_uid)
        info["cpu"] = self._cpu.cpu if self._cpu is not None else None
        cgroup = self._cgroup
        info["cgroup"] = cgroup.describe() if cgroup is not None else "none: the sandbox is not running"
        info["cgroup_paths"] = [str(folder) for folder in cgroup.folders] if cgroup is not None else []
        info["cgroup_memory_peak"] = cgroup.peak_bytes() if cgroup is not None else None
        return info

    def close(self) -> None:
        self._drop_cgroup()
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        if self._cpu is not None:
            self._cpu.release()
            self._cpu = None
