"""The distribution installs one import package, ``boundary``, and nothing else at the top level."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("api", "workers", "migrations")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the checkout's files, so that no build/ folder of an earlier build
    # (which setuptools never cleans) can add modules that no longer exist.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (found,) = out.glob("boundary-*.whl")
    return found


def _tree_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *FOLDERS], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    return {f"boundary/{name}" for name in listed.split()
            if name.endswith((".py", ".mako")) and (REPO / name).is_file()}


def test_the_wheel_holds_one_top_level_package_and_every_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"boundary", f"{wheel.name.split('-py3')[0]}.dist-info"}
    missing = sorted(_tree_files() - set(names))
    assert not missing, f"not in the wheel (a package missing from pyproject's packages list?): {missing}"


def test_the_installed_wheel_imports_as_boundary_only(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    # -S: no site-packages (so not this checkout's editable install); only the wheel's files.
    probe = (f"import sys; sys.path.insert(0, {str(target)!r}); import boundary.api.errors, boundary.migrations; "
             "print(boundary.api.errors.__file__); import api")
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == str(target / "boundary" / "api" / "errors.py")
    assert "ModuleNotFoundError: No module named 'api'" in result.stderr


@pytest.mark.parametrize("name", FOLDERS)
def test_the_folders_are_not_importable_by_their_own_names_outside_the_repo(name: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", f"import boundary.{name}; import {name}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert f"No module named '{name}'" in result.stderr, result.stderr
