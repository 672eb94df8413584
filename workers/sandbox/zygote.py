"""The zygote: a pristine interpreter with the heavy modules loaded, forking one candidate per
sample; it never receives a test or an expected value. It runs only the zygote's sources (the
values codec, framing, hardening, the candidate and this module), so that each fork copies as
few pages as it can. Standard library only (see docs/sandbox.md)."""

from __future__ import annotations

import builtins
import gc
import os
import pickle
import socket
import sys

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.candidate import ZYGOTE_FD, candidate_main, describe, reap
    from boundary.workers.sandbox.framing import Closed, recv, send, write_all
    from boundary.workers.sandbox.hardening import (
        PR_SET_DUMPABLE,
        apply_limits,
        first_to_die,
        install_seccomp,
        isolate_fds,
        prctl,
    )


class _Exit:
    """``exit()`` and ``quit()`` (``site`` is not loaded, so they are not builtins)."""

    def __repr__(self) -> str:
        return "Use exit() to exit"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


def zygote_main(ctl_fd: int, heavy: bool) -> None:
    isolate_fds({ctl_fd: ZYGOTE_FD})
    ctl_fd = ZYGOTE_FD
    control = socket.socket(fileno=ctl_fd)
    config = pickle.loads(recv(ctl_fd))
    prctl(PR_SET_DUMPABLE, 0)
    loaded, failed = preload(config, heavy)
    os.environ.update(HOME=config["workdir"], TMPDIR=config["workdir"])
    builtins.exit = builtins.quit = _Exit()  # type: ignore[attr-defined]
    sys.argv = ["candidate"]
    os.umask(0o077)
    first_to_die()
    apply_limits(config["limits"])
    if config.get("seccomp", True):
        install_seccomp()  # inherited by every candidate, so no sample pays for installing it
    gc.collect()
    gc.freeze()
    send(ctl_fd, pickle.dumps(("ready", loaded, failed)))
    space = socket.CMSG_SPACE(4)
    while True:  # as little as possible per fork: each page written here is a fault after it
        try:
            marker, ancdata, _flags, _address = control.recvmsg(1, space)
        except OSError:
            return
        if not marker or len(ancdata) != 1 or len(ancdata[0][2]) != 4:
            return
        fd = int.from_bytes(ancdata[0][2], sys.byteorder)
        reap()
        pid = os.fork()
        if pid == 0:
            candidate_main(fd, config)
        os.close(fd)
        try:
            write_all(ctl_fd, pid.to_bytes(4, "big"))
        except Closed:
            return


def preload(config: dict, heavy: bool) -> tuple[list[str], list[str]]:
    """Put the sandbox's package folders on the path and import the modules named in the
    config once, so that every candidate starts with them loaded; the heavy zygote also
    imports the packages (numpy), which make every fork slower."""
    site_paths = config.get("site_paths")
    if site_paths is None:
        import site

        site.main()
    else:
        sys.path.extend(site_paths)
    loaded, failed = [], []
    for name in [*config.get("preload", ()), *(config.get("heavy", ()) if heavy else ())]:
        try:
            __import__(name)
            loaded.append(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional module is reported, not fatal
            failed.append(f"{name}: {describe(exc)}")
    return loaded, failed


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "zygote":
    zygote_main(int(sys.argv[2]), sys.argv[3] == "heavy")
