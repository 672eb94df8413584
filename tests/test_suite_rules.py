"""The rules of the test suite itself: test modules share code only through tests/support/
(never by importing each other or conftest), and a test that loads a real model is marked slow."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

TESTS = REPO / "tests"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, the text of ``module``;
    ``from package import name`` gives ``package.name`` too, since ``name`` may be a module."""
    package = module.rsplit(".", 1)[0].split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def is_test_module(name: str) -> bool:
    """A test module or a conftest, by name (``tests.test_fleet``, ``tests.conftest``, ``test_x``)."""
    last = name.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}: imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in imported_modules(path.read_text(), module_name(path))
        if is_test_module(name) and name != module_name(path)
    ]
    assert offenders == [], "share code through tests/support/ instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ("import tests.test_fleet\n", ["tests.test_fleet"]),
    ("from tests.conftest import REPO\n", ["tests.conftest", "tests.conftest.REPO"]),
    ("from tests import test_passk\n", ["tests", "tests.test_passk"]),
    ("from .test_sandbox import run\n", ["tests.test_sandbox", "tests.test_sandbox.run"]),
    ("from . import conftest\n", ["tests", "tests.conftest"]),
    ("from ..support.fleet import Fleet\n", ["tests.support.fleet", "tests.support.fleet.Fleet"]),
])
def test_the_rule_sees_every_spelling_of_an_import(source: str, expected: list[str]) -> None:
    module = "tests.support.probe" if source.startswith("from ..") else "tests.probe"
    found = [name for _line, name in imported_modules(source, module)]
    assert found == expected
    assert any(is_test_module(n) for n in found) == ("support" not in source)


def run_pytest(tmp_path: Path, test_source: str) -> subprocess.CompletedProcess:
    """Collect one test file under this suite's conftest (as a plugin), in a folder of its own."""
    test = tmp_path / "test_probe.py"
    test.write_text(test_source)
    path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), str(test)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("fixture", ["cache_dir", "vllm_engine", "vllm_token_engine"])
def test_a_test_that_loads_a_model_must_be_marked_slow(tmp_path: Path, fixture: str) -> None:
    unmarked = run_pytest(tmp_path, f"def test_uses_a_model({fixture}):\n    pass\n")
    assert unmarked.returncode == pytest.ExitCode.USAGE_ERROR, unmarked.stdout + unmarked.stderr
    assert "tests that load a real model must be marked slow: test_probe.py::test_uses_a_model" in unmarked.stderr
    marked = run_pytest(tmp_path, f"import pytest\n\n@pytest.mark.slow\ndef test_uses_a_model({fixture}):\n    pass\n")
    assert marked.returncode == 0 and "1 test collected" in marked.stdout, marked.stdout + marked.stderr


def test_tests_of_the_processed_mode_engine_run_last(tmp_path: Path) -> None:
    """vLLM in processed-logprobs mode replaces the raw engine in the process cache: its tests
    run after every other one (order kept within each group), so a session loads each mode once."""
    source = ("import pytest\n\npytestmark = pytest.mark.slow\n\n"
              "@pytest.fixture\ndef drawn(vllm_token_engine):\n    return 1\n\n"
              "def test_tokens(vllm_token_engine):\n    pass\n\ndef test_raw(vllm_engine):\n    pass\n\n"
              "def test_through_a_fixture(drawn):\n    pass\n\ndef test_none():\n    pass\n")
    collected = run_pytest(tmp_path, source)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    order = [line.split("::")[1] for line in collected.stdout.splitlines() if "::" in line]
    assert order == ["test_raw", "test_none", "test_tokens", "test_through_a_fixture"]
