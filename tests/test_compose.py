"""docker-compose.yml: valid for Compose, and every boundary service runs a real command."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from boundary.api.cli import cli
from tests.support.paths import REPO


def compose_config() -> dict:
    """The file as Compose resolves it with .env.example (Compose v2 plugin, else v1)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        assert shutil.which("docker-compose"), "docker-compose is missing: scripts/system installs it"
        command = ["docker-compose"]
    done = subprocess.run([*command, "--env-file", ".env.example", "config"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return compose_config()


def test_the_fleet_is_all_there(config: dict) -> None:
    services = config["services"]
    assert {"postgres", "redis", "flower", "migrate", "sample", "grade", "sandbox"} <= set(services)
    gpu = services["sample"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["sample"]["build"]["target"] == "gpu"
    assert services["migrate"]["restart"] == "no"
    for name in ("sample", "grade", "sandbox"):
        env = services[name]["environment"]
        assert env["BOUNDARY_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["BOUNDARY_BROKER_URL"].startswith("redis://redis:6379")
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_boundary_service_runs_a_real_command(config: dict) -> None:
    ours = {n: s for n, s in config["services"].items() if str(s.get("image", "")).startswith("boundary:")}
    assert set(ours) == {"migrate", "sample", "grade", "sandbox"}
    for name, service in ours.items():
        command = [str(part) for part in service["command"]]
        # --help after the real arguments: unknown commands or options still fail to parse
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: `boundary {' '.join(command)}` is not a valid command: {result.output}"
    queues = {s["command"][1] for s in ours.values() if s["command"][0] == "worker"}
    assert queues == {"sample", "grade", "sandbox"}


def test_the_dockerfile_builds_both_targets_with_boundary_as_entrypoint() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for target in ("base", "gpu"):
        assert f" AS {target}\n" in dockerfile
    assert dockerfile.count('ENTRYPOINT ["boundary"]') == 2
    assert "bubblewrap" in dockerfile
