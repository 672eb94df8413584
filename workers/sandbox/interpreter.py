"""The interpreter a bubblewrap sandbox runs, and what of its installation the sandbox sees: the
binary, the standard library and its libpython, never the installed packages. How an
interpreter outside /usr is mounted: docs/sandbox.md."""

from __future__ import annotations

import functools
import glob
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PYTHON_DIR = "/opt/boundary/python"
"""Where an interpreter from outside /usr is mounted inside the sandbox (read-only)."""

LIBRARY_DIR = f"{PYTHON_DIR}/lib"
"""Where its shared libraries (libpython3.X.so) are mounted."""

SYSTEM_SITE_GLOBS = (
    "/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
    "/usr/lib64/python3*/site-packages", "/usr/lib64/python3*/dist-packages",
    "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
    "/usr/local/lib64/python3*/site-packages", "/usr/local/lib64/python3*/dist-packages",
    "/usr/share/python-wheels",
)
"""Package folders under /usr, hidden from the sandbox whatever interpreter it runs (Debian's
python3-* packages live in /usr/lib/python3/dist-packages, pip's in /usr/local; Debian keeps the
wheels ensurepip installs, pip's among them, in /usr/share/python-wheels)."""

HIDDEN_IN_STDLIB = ("site-packages", "dist-packages", "ensurepip/_bundled")
"""Folders of an interpreter's lib/python3.X that are packages, not the standard library
(``ensurepip/_bundled`` holds pip's wheel, importable with a sys.path entry)."""


@dataclass(frozen=True)
class Interpreter:
    """An installed CPython, by its host paths."""

    binary: str
    stdlib: str
    """lib/python3.X of its prefix."""
    dynload: str
    """lib/python3.X/lib-dynload of its exec prefix (the same folder's, usually)."""
    libraries: tuple[str, ...] = ()
    """Shared libraries it links from outside /usr and /lib (libpython3.X.so, with --enable-shared)."""

    @property
    def in_usr(self) -> bool:
        return _in_usr(self.binary)

    @property
    def version_dir(self) -> str:
        return Path(self.stdlib).name

    @property
    def sandbox_binary(self) -> str:
        """Its path inside the sandbox."""
        return self.binary if self.in_usr else f"{PYTHON_DIR}/bin/{Path(self.binary).name}"

    @property
    def sandbox_stdlib(self) -> str:
        return self.stdlib if self.in_usr else f"{PYTHON_DIR}/lib/{self.version_dir}"


def _in_usr(path: str) -> bool:
    return path == "/usr" or path.startswith("/usr/")


def linked_libraries(binary: str) -> tuple[str, ...]:
    """The shared libraries ``binary`` loads from outside the system folders (from ``ldd``;
    none when ldd is missing or fails: a static interpreter, or one whose libpython is found
    in /usr)."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in out.splitlines():
        _name, arrow, rest = line.partition("=>")
        path = rest.split("(")[0].strip() if arrow else ""
        if path.startswith("/") and not _in_usr(os.path.realpath(path)) and not path.startswith(("/lib", "/etc")):
            found.append(path)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def host_interpreter() -> Interpreter:
    """This process's interpreter (a venv's base interpreter: its packages are not mounted)."""
    binary = os.path.realpath(sys.executable)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = os.path.join(os.path.realpath(sys.base_prefix), "lib", version)
    dynload = os.path.join(os.path.realpath(sys.base_exec_prefix), "lib", version, "lib-dynload")
    return Interpreter(binary, stdlib, dynload, linked_libraries(binary))


def mask(path: str) -> list[str]:
    """bwrap arguments covering ``path`` (a folder already mounted) with an empty read-only
    tmpfs."""
    return ["--perms", "0555", "--size", "4096", "--tmpfs", path, "--remount-ro", path]


def system_site_dirs(patterns: tuple[str, ...] = SYSTEM_SITE_GLOBS) -> list[str]:
    """The package folders of /usr this host has."""
    return sorted({path for pattern in patterns for path in glob.glob(pattern) if os.path.isdir(path)})


def stdlib_mounts(interp: Interpreter) -> list[tuple[str, str]]:
    """(host path, sandbox path) of what an interpreter from outside /usr needs: the binary,
    the standard library, lib-dynload (when the exec prefix is another folder) and its shared
    libraries (in ``LIBRARY_DIR``, found through ``library_env``)."""
    if interp.in_usr:
        return []
    mounts = [(interp.binary, interp.sandbox_binary), (interp.stdlib, interp.sandbox_stdlib)]
    if Path(interp.dynload).parent != Path(interp.stdlib) and os.path.isdir(interp.dynload):
        mounts.append((interp.dynload, f"{interp.sandbox_stdlib}/lib-dynload"))
    for library in interp.libraries:
        mounts.append((library, f"{LIBRARY_DIR}/{Path(library).name}"))
    return mounts


def library_env(interp: Interpreter) -> dict[str, str]:
    """The environment that makes the loader find the interpreter's shared libraries at
    ``LIBRARY_DIR`` (LD_LIBRARY_PATH is searched before the binary's RUNPATH, an absolute host
    path that would otherwise have to exist inside)."""
    return {"LD_LIBRARY_PATH": LIBRARY_DIR} if interp.libraries and not interp.in_usr else {}


def stdlib_masks(interp: Interpreter) -> list[str]:
    """The sandbox paths of the package folders inside the interpreter's own lib/python3.X
    (for a /usr interpreter, some are also among ``system_site_dirs``)."""
    return [f"{interp.sandbox_stdlib}/{name}" for name in HIDDEN_IN_STDLIB
            if os.path.isdir(os.path.join(interp.stdlib, name))]
