"""What of the host's Python the bubblewrap sandbox sees: the standard library, the interpreter
and the declared packages, never the installed ones (pip, pytest, requests), even through a
sys.path entry naming their folder. The command lines are checked for an interpreter outside
/usr (pyenv's, mounted at a fixed place) and for a /usr one (Debian's), and both run for real."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from boundary.workers.sandbox import SandboxOptions, open_sandbox
from boundary.workers.sandbox import bwrap as bwrap_module
from boundary.workers.sandbox.bwrap import bwrap_command, namespace_problem
from boundary.workers.sandbox.interpreter import PYTHON_DIR, Interpreter, host_interpreter, mask, system_site_dirs
from tests.support.sandbox import observe

VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
HOST_SITE = sorted({p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
                   | {os.path.join(os.path.realpath(sys.base_prefix), "lib", VERSION, "site-packages")})
"""The package folders of the host's interpreter (and its venv): what a sample might add to
sys.path to reach pip, pytest..."""

IMPORTS = (
    "import importlib, glob, sys\n"
    "def f():\n"
    "    sys.path += EXTRA + glob.glob('/opt/boundary/python/lib/*/ensurepip/_bundled/*.whl')\n"
    "    sys.path += glob.glob('/usr/lib/python3*/ensurepip/_bundled/*.whl')"
    " + glob.glob('/usr/share/python-wheels/*')\n"
    "    out = {'executable': sys.executable, 'prefix': sys.prefix}\n"
    "    for name in ('pip', 'pytest', 'requests', 'IPython', 'setuptools', 'json', 'sqlite3', 'ctypes', 'numpy'):\n"
    "        try:\n"
    "            importlib.import_module(name)\n"
    "            out[name] = 'ok'\n"
    "        except ImportError as e:\n"
    "            out[name] = type(e).__name__\n"
    "    return out\n"
)
"""Which modules import inside, with the host's package folders (and pip's wheels) on sys.path."""

PACKAGES_GONE = {"pip": "ModuleNotFoundError", "pytest": "ModuleNotFoundError", "requests": "ModuleNotFoundError",
                 "IPython": "ModuleNotFoundError", "setuptools": "ModuleNotFoundError"}


def _host_has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _imports(server) -> dict:  # noqa: ANN001 - a started ForkServer
    extra = HOST_SITE + ["/usr/lib/python3/dist-packages", f"/usr/local/lib/{VERSION}/dist-packages",
                         f"{PYTHON_DIR}/lib/{VERSION}/site-packages"]
    return observe(server, IMPORTS.replace("EXTRA", repr(extra)))


@pytest.fixture(scope="module")
def bwrap_ready() -> None:
    problem = namespace_problem(os.geteuid() == 0)
    if problem:
        pytest.skip(f"bwrap cannot make its namespaces here: {problem}")


# --- the command lines ---------------------------------------------------------------------------


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def _has_run(argv: list[str], part: list[str]) -> bool:
    return any(argv[i:i + len(part)] == part for i in range(len(argv)))


def test_an_interpreter_outside_usr_is_mounted_at_a_fixed_place_without_its_packages(tmp_path: Path) -> None:
    prefix = tmp_path / "versions/3.11.7"
    for folder in ("bin", "lib/python3.11/site-packages/pip", "lib/python3.11/ensurepip/_bundled",
                   "lib/python3.11/lib-dynload"):
        (prefix / folder).mkdir(parents=True)
    for file in ("bin/python3.11", "lib/python3.11/os.py", "lib/libpython3.11.so.1.0"):
        (prefix / file).write_text("")
    interp = Interpreter(str(prefix / "bin/python3.11"), str(prefix / "lib/python3.11"),
                         str(prefix / "lib/python3.11/lib-dynload"), (str(prefix / "lib/libpython3.11.so.1.0"),))
    argv = bwrap_command(SandboxOptions(packages=()), True, interp)
    binds = _pairs(argv, "--ro-bind")
    assert (str(prefix / "bin/python3.11"), f"{PYTHON_DIR}/bin/python3.11") in binds
    assert (str(prefix / "lib/python3.11"), f"{PYTHON_DIR}/lib/python3.11") in binds
    library = str(prefix / "lib/libpython3.11.so.1.0")
    assert (library, f"{PYTHON_DIR}/lib/libpython3.11.so.1.0") in binds and not any(t == library for _s, t in binds)
    assert _has_run(argv, ["--setenv", "LD_LIBRARY_PATH", f"{PYTHON_DIR}/lib"])  # found there, not at the RUNPATH
    assert not any(source in (str(prefix), str(prefix / "lib")) or "site-packages" in source for source, _ in binds)
    for hidden in ("site-packages", "ensurepip/_bundled"):
        assert _has_run(argv, mask(f"{PYTHON_DIR}/lib/python3.11/{hidden}")), hidden
    for folder in system_site_dirs():  # the host's own /usr packages are hidden too
        assert _has_run(argv, mask(folder))
    assert argv[argv.index("--") + 1:argv.index("--") + 3] == [f"{PYTHON_DIR}/bin/python3.11", "-S"]
    assert argv.index(f"{PYTHON_DIR}/lib/python3.11/site-packages") > argv.index(f"{PYTHON_DIR}/lib/python3.11")
    # an exec prefix of its own: its lib-dynload is mounted into the fixed stdlib
    other = tmp_path / "exec/lib/python3.11/lib-dynload"
    other.mkdir(parents=True)
    split = Interpreter(interp.binary, interp.stdlib, str(other))
    assert (str(other), f"{PYTHON_DIR}/lib/python3.11/lib-dynload") in _pairs(
        bwrap_command(SandboxOptions(), True, split), "--ro-bind")


def test_a_usr_interpreter_runs_where_it_is_with_every_usr_package_folder_hidden() -> None:
    interp = Interpreter("/usr/bin/python3.11", "/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload")
    argv = bwrap_command(SandboxOptions(packages=()), False, interp)
    assert argv[argv.index("--") + 1] == "/usr/bin/python3.11"
    assert not any(PYTHON_DIR in target for _source, target in _pairs(argv, "--ro-bind"))
    assert ("/usr", "/usr") in _pairs(argv, "--ro-bind")
    hidden = system_site_dirs()
    for folder in hidden:
        assert _has_run(argv, mask(folder)) and argv.index(folder) > argv.index("/usr")
    for debian in ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3.11/dist-packages",
                   "/usr/local/lib/python3.11/site-packages", "/usr/share/python-wheels"):
        assert (debian in hidden) == os.path.isdir(debian), debian
    assert system_site_dirs(("/nonexistent/python3*/dist-packages",)) == []


def test_the_host_interpreter_and_its_shared_libpython() -> None:
    interp = host_interpreter()
    assert interp.binary == os.path.realpath(sys.executable) and Path(interp.stdlib, "os.py").is_file()
    for library in interp.libraries:
        assert Path(library).is_file() and not library.startswith(("/usr/", "/lib"))
    if not interp.in_usr:
        assert interp.sandbox_binary == f"{PYTHON_DIR}/bin/{Path(interp.binary).name}"


# --- for real ------------------------------------------------------------------------------------


def test_only_the_standard_library_and_the_declared_packages_import(bwrap_ready: None) -> None:
    with open_sandbox("bwrap", SandboxOptions()) as server:
        seen = _imports(server)
    assert {name: seen[name] for name in PACKAGES_GONE} == PACKAGES_GONE, seen
    assert seen["json"] == seen["ctypes"] == seen["numpy"] == "ok", seen
    if _host_has("sqlite3"):
        assert seen["sqlite3"] == "ok", seen
    if not host_interpreter().in_usr:
        assert seen["executable"] == host_interpreter().sandbox_binary and seen["prefix"] == PYTHON_DIR


def test_debians_own_interpreter_sees_no_dist_packages(bwrap_ready: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's /usr/bin/python3.X (same minor version as this one) as the sandbox's interpreter:
    its python3-* packages (pip, requests...) are in /usr/lib/python3/dist-packages, hidden."""
    binary = f"/usr/bin/{VERSION}"
    if not os.path.isfile(binary) or not os.path.isfile(f"/usr/lib/{VERSION}/os.py"):
        pytest.skip(f"no {binary} with its standard library in /usr/lib/{VERSION}")
    usr = Interpreter(binary, f"/usr/lib/{VERSION}", f"/usr/lib/{VERSION}/lib-dynload")
    monkeypatch.setattr(bwrap_module, "host_interpreter", lambda: usr)
    with open_sandbox("bwrap", SandboxOptions(packages=(), preload=())) as server:
        seen = _imports(server)
    assert seen["executable"] == binary and seen["prefix"] == "/usr"
    assert {name: seen[name] for name in PACKAGES_GONE} == PACKAGES_GONE, seen
    assert seen["json"] == seen["ctypes"] == "ok" and seen["numpy"] == "ModuleNotFoundError", seen
