"""Under scripts/test (BOUNDARY_TEST_STRICT=1) a test that would skip fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO


def _outcome(tmp_path: Path, strict: bool) -> str:
    test = tmp_path / "test_needs_a_service.py"
    test.write_text("import pytest\n\ndef test_needs_a_service():\n    pytest.skip('no such service here')\n")
    env = {**os.environ, "BOUNDARY_TEST_STRICT": "1" if strict else "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), str(test)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    return done.stdout


def test_a_skip_fails_under_scripts_test(tmp_path: Path) -> None:
    out = _outcome(tmp_path, strict=True)
    assert "1 failed" in out and "would have skipped" in out and "no such service here" in out, out


def test_a_skip_is_a_skip_otherwise(tmp_path: Path) -> None:
    out = _outcome(tmp_path, strict=False)
    assert "1 skipped" in out and "failed" not in out, out
