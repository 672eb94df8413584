"""The layout's rules, checked by tools: import-linter's contracts (pyproject.toml), ruff, and
no import of the folders by their bare names (``api``, ``workers``, ``migrations``)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed (pip install -e '.[test]')"
    return found


def lint_imports(config: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [_tool("lint-imports"), "--no-cache"] + (["--config", str(config)] if config else [])
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "4 kept" in result.stdout


@pytest.mark.parametrize(
    "contract, expected",
    [
        # The workers do use the library: a contract saying otherwise must break.
        ('type = "forbidden"\nsource_modules = ["boundary.workers"]\nforbidden_modules = ["boundary.api"]',
         "boundary.workers"),
        # The math grader imports math_verify, which is not the standard library.
        ('type = "stdlib_only"\nsource_modules = ["boundary.workers.graders.math"]', "math_verify"),
    ],
    ids=["forbidden", "stdlib-only"],
)
def test_a_broken_contract_is_reported(contract: str, expected: str, tmp_path: Path) -> None:
    config = tmp_path / "contracts.toml"
    head = ((REPO / "pyproject.toml").read_text()
            .split("[tool.importlinter]")[1].split("[[tool.importlinter.contracts]]")[0])
    config.write_text(f"[tool.importlinter]{head}[[tool.importlinter.contracts]]\nname = \"must break\"\n{contract}\n")
    result = lint_imports(config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout and expected in result.stdout


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout.split()
    return [REPO / name for name in listed if not name.startswith("tests/data/") and (REPO / name).is_file()]


def test_nothing_imports_the_folders_by_their_bare_names() -> None:
    bare = {"api", "workers", "migrations"}
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in bare]
    assert not found, found


def test_the_stdlib_contract_covers_every_module_sent_into_the_sandbox() -> None:
    import tomllib

    from boundary.workers.sandbox.client import SERVER_MODULES, ZYGOTE_MODULES

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in config if c["type"] == "stdlib_only"]
    assert sorted(contract["source_modules"]) == sorted(m.__name__ for m in (*ZYGOTE_MODULES, *SERVER_MODULES))
