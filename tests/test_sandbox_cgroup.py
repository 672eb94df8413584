"""The bubblewrap sandbox's cgroup: a memory cap (swap included) and a pids cap on the whole
sandbox. The cgroup files are first read from fake trees (cgroup v2, v1, a hybrid host, a mount
that shows only part of a hierarchy), then the real sandbox is capped on this machine: these
tests skip, with the reason, where no cgroup can be made (not root, read-only cgroupfs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boundary.api import defaults
from boundary.workers.sandbox import SandboxOptions, cgroups, open_sandbox
from boundary.workers.sandbox.bwrap import namespace_problem
from tests.support.sandbox import EXPECT_FIVE, EXPECT_TRUE, GOOD, observe, run

HYBRID = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / {root}/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / {root}/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / {root}/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw\n"
)
HYBRID_MEMBERSHIP = "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/one\n1:cpu:/\n0::/\n"


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


# --- finding the hierarchies and writing the limits (fake trees) ----------------------------------


def test_hybrid_host_uses_the_v1_memory_and_pids_hierarchies(tmp_path: Path) -> None:
    """Debian 12 here: memory and pids are v1 hierarchies, the cgroup2 mount offers neither."""
    _tree(tmp_path, {"memory/jobs/one/cgroup.procs": "", "pids/cgroup.procs": "",
                     "unified/cgroup.controllers": "hugetlb\n"})
    found = cgroups.hierarchies(HYBRID.format(root=tmp_path), HYBRID_MEMBERSHIP)
    assert [(h.version, sorted(h.controllers), h.here) for h in found] == [
        (2, [], tmp_path / "unified"),
        (1, ["memory"], tmp_path / "memory/jobs/one"),
        (1, ["pids"], tmp_path / "pids"),
    ]
    cgroup = cgroups.create(600 << 20, 96, HYBRID.format(root=tmp_path), HYBRID_MEMBERSHIP)
    memory, pids = cgroup.dirs["memory"], cgroup.dirs["pids"]
    assert memory.parent == tmp_path / "memory/jobs/one" and pids.parent == tmp_path / "pids"
    assert memory.name == pids.name == cgroup.name and cgroup.name.startswith(f"boundary-sandbox-{os.getpid()}-")
    assert (memory / "memory.limit_in_bytes").read_text() == str(600 << 20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(600 << 20)  # no swap on top
    assert (pids / "pids.max").read_text() == "96"
    assert cgroup.problems == []
    assert "v1: memory 600 MiB, swap included" in cgroup.describe() and "v1: pids 96" in cgroup.describe()


def test_v2_enables_the_controllers_and_sets_max_files(tmp_path: Path) -> None:
    mountinfo = f"41 31 0:38 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    _tree(tmp_path, {"worker/cgroup.controllers": "cpu memory io pids\n", "worker/cgroup.subtree_control": ""})
    cgroup = cgroups.create(4096 << 20, 96, mountinfo, "0::/worker\n")
    folder = tmp_path / "worker" / cgroup.name
    assert cgroup.dirs == {"memory": folder, "pids": folder} and cgroup.folders == [folder]
    assert (tmp_path / "worker/cgroup.subtree_control").read_text() == "+memory +pids"
    assert [(folder / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max")] == [
        str(4096 << 20), "0", "96"]
    argv = cgroup.wrap(["bwrap", "--", "python"])
    assert argv[:3] == ["/bin/sh", "-c", cgroups.JOIN_SCRIPT]
    assert argv[3:] == [cgroups.PREFIX, "1", str(folder), str(cgroups.SERVER_OOM_SCORE_ADJ), "bwrap", "--", "python"]


def test_a_mount_of_part_of_a_hierarchy_is_followed(tmp_path: Path) -> None:
    """A container that sees its own cgroup mounted at the top: /proc/self/cgroup names the
    full path, the mount's root says which part is mounted."""
    mountinfo = f"41 31 0:38 /docker/abc {tmp_path} rw - cgroup2 cgroup2 rw\n"
    _tree(tmp_path, {"sub/cgroup.controllers": "memory\n", "sub/cgroup.subtree_control": "memory\n"})
    [found] = cgroups.hierarchies(mountinfo, "0::/docker/abc/sub\n")
    assert found.here == tmp_path / "sub" and found.controllers == {"memory"}
    assert cgroups.hierarchies(mountinfo, "0::/elsewhere\n") == []


def test_no_cgroup_means_rlimits_only_and_says_why(tmp_path: Path) -> None:
    readonly = f"41 31 0:38 / {tmp_path} ro,nosuid - cgroup2 cgroup2 rw\n"
    cgroup = cgroups.create(600 << 20, 96, readonly, "0::/\n")
    assert cgroup.dirs == {} and cgroup.wrap(["bwrap"]) == ["bwrap"]
    assert cgroup.describe() == "none, rlimits only: no writable memory controller; no writable pids controller"
    # v2's no-internal-process rule: a cgroup with processes cannot enable controllers for children
    _tree(tmp_path, {"busy/cgroup.controllers": "memory pids\n"})
    (tmp_path / "busy/cgroup.subtree_control").mkdir()  # any write fails
    busy = cgroups.create(600 << 20, 96, f"41 31 0:38 / {tmp_path} rw - cgroup2 cgroup2 rw\n", "0::/busy\n")
    assert busy.dirs == {} and "cannot enable memory+pids in" in busy.describe()
    assert not any(p.name.startswith(cgroups.PREFIX) for p in (tmp_path / "busy").iterdir())


def test_stale_cgroups_of_dead_workers_are_removed(tmp_path: Path) -> None:
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    for name in (f"boundary-sandbox-{dead}-1", f"boundary-sandbox-{os.getpid()}-99999", "someone-else"):
        (tmp_path / name).mkdir()
    cgroups.remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"boundary-sandbox-{os.getpid()}-99999", "someone-else"]


# --- the real sandbox on this machine -------------------------------------------------------------

HOG = (
    "import os, time\n"
    "def hog(w):\n"
    "    held = []\n"
    "    for _ in range(30):\n"
    "        held.append(b'x' * (10 << 20))  # 300 MiB in all, each page written\n"
    "        os.write(w, b'.')\n"
    "    time.sleep(1.5)  # hold it while the others grow\n"
    "    os._exit(0)\n"
    "def f():\n"
    "    pipes, pids = [], []\n"
    "    for _ in range(3):\n"
    "        r, w = os.pipe()\n"
    "        pid = os.fork()\n"
    "        if pid == 0:\n"
    "            os.close(r)\n"
    "            hog(w)\n"
    "        os.close(w)\n"
    "        pipes.append(r)\n"
    "        pids.append(pid)\n"
    "    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]\n"
    "    return [10 * len(os.read(r, 64)) for r in pipes], codes\n"
)
"""Three children that each write 300 MiB (well below RLIMIT_AS's 2 GiB) and hold it: (MiB
each wrote, exit codes)."""


def _capped(options: SandboxOptions):  # noqa: ANN202 - a started ForkServer
    problem = namespace_problem(os.geteuid() == 0)
    if problem:
        pytest.skip(f"bwrap cannot make its namespaces here: {problem}")
    server = open_sandbox("bwrap", options)
    if "memory" not in server.describe()["cgroup"]:
        reason = server.describe()["cgroup"]
        server.close()
        pytest.skip(f"no memory cgroup can be made here: {reason}")
    return server


def test_three_children_cannot_hold_more_than_the_sandbox_cap() -> None:
    """600 MiB for the whole sandbox: three 300 MiB children cannot all hold theirs; the kernel
    kills the biggest, the sample fails, and the same sandbox (not restarted) grades the next
    sample. The same program under the default 4 GiB cap gets all of it."""
    with _capped(SandboxOptions(total_memory_mb=600)) as server:
        touched, codes = observe(server, HOG)
        assert -9 in codes, (touched, codes)  # SIGKILL: the memory cgroup's OOM killer
        peak = server.describe()["cgroup_memory_peak"]
        assert peak is not None and peak <= 600 << 20
        all_held = HOG.replace("def f():", "def touch():") + "def f():\n    return touch() == ([300] * 3, [0] * 3)\n"
        assert run(server, all_held, EXPECT_TRUE)["status"] == "failed"
        assert run(server, GOOD, EXPECT_FIVE)["status"] == "passed"
        assert server.starts == 1, "the OOM killer took the sandbox's own processes"
    with _capped(SandboxOptions()) as roomy:
        assert observe(roomy, HOG) == ([300, 300, 300], [0, 0, 0])


def test_the_cgroup_holds_the_sandbox_and_goes_with_it() -> None:
    """While the sandbox runs, its cgroup exists, holds bwrap and everything below it and has
    the limits; after a restart the old one is gone; after close(), the new one too."""
    options = SandboxOptions(total_memory_mb=700, processes=40)
    with _capped(options) as server:
        described = server.describe()
        folders = [Path(p) for p in described["cgroup_paths"]]
        assert folders and all(f.is_dir() and f.name.startswith(f"boundary-sandbox-{os.getpid()}-") for f in folders)
        assert run(server, GOOD, EXPECT_FIVE)["status"] == "passed"
        for folder in folders:
            members = {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            assert server.pid in members and len(members) >= 4  # bwrap, the server, a zygote, the judge
        limits = {f.name: (f.read_text().strip()) for folder in folders for f in folder.iterdir()
                  if f.name in ("memory.max", "memory.limit_in_bytes", "pids.max")}
        assert limits.get("memory.max", limits.get("memory.limit_in_bytes")) == str(700 << 20)
        if "pids" in described["cgroup"]:
            assert limits["pids.max"] == str(40 + defaults.SANDBOX_PIDS_MARGIN)
        os.killpg(server.pid, 9)
        assert run(server, GOOD, EXPECT_FIVE)["status"] == "passed" and server.starts == 2
        assert not any(f.exists() for f in folders), "the first sandbox's cgroup was left behind"
        folders = [Path(p) for p in server.describe()["cgroup_paths"]]
        assert folders and all(f.is_dir() for f in folders)
    assert not any(f.exists() for f in folders)
    assert server.describe()["cgroup"] == "none: the sandbox is not running"


def test_describe_says_which_cgroup_and_limits() -> None:
    with _capped(SandboxOptions(total_memory_mb=800)) as server:
        line = server.describe()["cgroup"]
        assert "\n" not in line and "memory 800 MiB, swap included" in line
        assert all(path in line for path in server.describe()["cgroup_paths"])
