"""Hardening: what confines a candidate and the judge: seccomp filters, rlimits, prctl, the switch
to an unprivileged uid, and descriptor isolation. Standard library only (run in the zygote and
the server; see docs/sandbox.md)."""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)


PR_SET_DUMPABLE = 4


PR_SET_NO_NEW_PRIVS = 38


PR_SET_SECCOMP = 22


SECCOMP_MODE_FILTER = 2


PR_SET_PDEATHSIG = 1


def prctl(option: int, arg: int = 0) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


_BLOCKED_SYSCALLS = {
    "x86_64": dict(
        ptrace=101, process_vm_readv=310, process_vm_writev=311, keyctl=250, add_key=248, request_key=249, bpf=321,
        perf_event_open=298, userfaultfd=323, unshare=272, setns=308, mount=165, umount2=166, pivot_root=155,
        chroot=161, open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
        mount_setattr=442, kexec_load=246, kexec_file_load=320, init_module=175, finit_module=313,
        delete_module=176, reboot=169, swapon=167, swapoff=168, acct=163, quotactl=179, syslog=103,
        io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_by_handle_at=304,
        name_to_handle_at=303, personality=135, inotify_init=253, inotify_init1=294, fanotify_init=300,
        sched_setaffinity=203,
    ),
    "aarch64": dict(
        ptrace=117, process_vm_readv=270, process_vm_writev=271, keyctl=219, add_key=217, request_key=218, bpf=280,
        perf_event_open=241, userfaultfd=282, unshare=97, setns=268, mount=40, umount2=39, pivot_root=41,
        chroot=51, open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
        mount_setattr=442, kexec_load=104, kexec_file_load=294, init_module=105, finit_module=273,
        delete_module=106, reboot=142, swapon=224, swapoff=225, acct=89, quotactl=60, syslog=116,
        io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_by_handle_at=265,
        name_to_handle_at=264, personality=92, inotify_init1=26, fanotify_init=262, sched_setaffinity=122,
    ),
}


_JUDGE_BLOCKED_SYSCALLS = {
    "x86_64": dict(fork=57, vfork=58, execve=59, execveat=322, socket=41, socketpair=53, connect=42, kill=62,
                   tkill=200, tgkill=234),
    "aarch64": dict(execve=221, execveat=281, socket=198, socketpair=199, connect=203, kill=129, tkill=130,
                    tgkill=131),
}
"""What the judge may not do on top of a candidate's list: it runs the benchmark's tests on
values it decoded itself, so it never needs a new process, program, socket or signal. Its clone
is refused whatever the flags (see ``seccomp_program``)."""


_ARCH = {"x86_64": (0xC000003E, 56, 435), "aarch64": (0xC00000B7, 220, 435)}
"""Audit arch, clone and clone3 numbers."""


_CLONE_NAMESPACES = 0x7E020080
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME."""


def seccomp_program(machine: str, judge: bool = False) -> bytes | None:
    """A classic-BPF seccomp filter: EPERM for ``_BLOCKED_SYSCALLS`` and for clone with a
    namespace flag, ENOSYS for clone3 (libc falls back to clone), EPERM for every other ABI (i386,
    x32). The judge's (``judge``) also refuses ``_JUDGE_BLOCKED_SYSCALLS`` and every clone. None
    on an architecture not listed here."""
    if machine not in _BLOCKED_SYSCALLS:
        return None
    arch, clone_nr, clone3_nr = _ARCH[machine]
    numbers = set(_BLOCKED_SYSCALLS[machine].values())
    if judge:
        numbers |= {*_JUDGE_BLOCKED_SYSCALLS[machine].values(), clone_nr}
    blocked = sorted(numbers)
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    prog: list[tuple[int, int, int, int]] = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0)]
    if machine == "x86_64":
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]
    for nr in blocked:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, clone3_nr), (ret, 0, 0, enosys)]
    prog += [(jeq, 0, 3, clone_nr), (ld, 0, 0, 16), (jset, 0, 1, _CLONE_NAMESPACES), (ret, 0, 0, eperm)]
    prog += [(ret, 0, 0, allow)]
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


def install_seccomp(program: bytes | None = None) -> bool:
    """Install a seccomp filter (``seccomp_program``'s for a candidate unless another is given)
    for this process and its descendants; False if unsupported."""
    program = program if program is not None else seccomp_program(os.uname().machine)
    if program is None:
        return False
    count = len(program) // 8
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(count, ctypes.cast(buffer, ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if _libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                   ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
    return True


def set_limit(which: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(which, (value, value))


def apply_limits(limits: dict) -> None:
    """rlimits every candidate inherits from the zygote: address space, file size, open files,
    processes (RLIMIT_NPROC: counted per uid, and ignored for root, which the zygote may be),
    no core files. The CPU limit is set per candidate (it counts each process's own time)."""
    set_limit(resource.RLIMIT_CORE, 0)
    set_limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
    set_limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
    set_limit(resource.RLIMIT_NOFILE, limits.get("open_files"))
    set_limit(resource.RLIMIT_NPROC, limits.get("processes"))
    set_limit(resource.RLIMIT_MSGQUEUE, 0)
    set_limit(resource.RLIMIT_MEMLOCK, 0)


def become(uid: int | None) -> None:
    """Drop to ``uid`` (and the same gid), with no supplementary groups; this also drops every
    capability. No-op for None (a sandbox that already runs unprivileged)."""
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid):
        raise OSError(errno.EPERM, "could not drop privileges")


def isolate_fds(keep: dict[int, int]) -> None:
    """Move each ``source: target`` descriptor into place, close everything else, and point
    0, 1, 2 at /dev/null unless kept."""
    moved = {}
    for source, target in keep.items():
        moved[target] = os.dup(source)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in moved:
            os.dup2(devnull, fd)
    for target, temp in moved.items():
        os.dup2(temp, target)
    top = max([2, *moved])
    os.closerange(top + 1, 1 << 16)
    for fd in range(3, top):
        if fd not in moved:
            try:
                os.close(fd)
            except OSError:
                pass


def first_to_die() -> None:
    """Ask the kernel to pick this process (and every candidate it forks, which inherit it)
    first when the sandbox's memory cgroup is full, rather than the server or the judge."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, b"1000")
    except OSError:
        pass
    finally:
        os.close(fd)
