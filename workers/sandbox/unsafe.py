"""No sandbox (``--unsafe-no-sandbox``): the same server as a plain child process, for machines
where no sandbox can start. The sample's code runs as this user, with the host's network and
files: only rlimits, the seccomp filter, timeouts and process cleanup remain."""

from __future__ import annotations

import shutil
import sys
import tempfile
from typing import Any

from boundary.workers.sandbox.channel import ProcessChannel
from boundary.workers.sandbox.framing import BOOTSTRAP
from boundary.workers.sandbox.options import SANDBOX_ENV, SandboxOptions


class UnsafeBackend:
    name = "none"

    def __init__(self, options: SandboxOptions):
        self.options = options
        self._scratch = tempfile.mkdtemp(prefix="boundary-unsafe-")

    def launch(self) -> ProcessChannel:
        env = {**SANDBOX_ENV, "HOME": self._scratch, "TMPDIR": self._scratch}
        return ProcessChannel([sys.executable, "-S", "-c", BOOTSTRAP, "server"], env=env, cwd=self._scratch)

    def server_config(self) -> dict[str, Any]:
        # RLIMIT_NPROC counts all of this user's processes here (no namespace of its own): not set.
        return self.options.server_config(
            limits=self.options.limits(processes=False), workdir=f"{self._scratch}/work", wipe=[self._scratch],
            site_paths=None, subreaper=True,
        )

    def explain(self, channel: ProcessChannel | None, problem: str) -> str:
        stderr = channel.stderr_tail() if channel is not None else ""
        return f"unsandboxed code runner cannot start: {stderr.splitlines()[-1] if stderr else problem}"

    def describe(self) -> dict[str, Any]:
        return {"unsafe": True, "scratch": self._scratch}

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
