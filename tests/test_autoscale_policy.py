"""Autoscaling without servers: the policy file and flags, the decision with a fake clock, the
KEDA manifests (checked against KEDA's field names) and the Compose commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from boundary.api import defaults
from boundary.api.autoscale_policy import (
    Memory,
    Policy,
    QueuePolicy,
    build_policy,
    decide,
    load_policy,
    parse_policy,
    parse_pool_autoscale,
)
from boundary.api.cli import cli
from boundary.api.cli.autoscale import check_worker_args
from boundary.api.errors import ConfigError, DataError
from boundary.workers.autoscale.compose import ComposeBackend
from boundary.workers.autoscale.keda import manifests, scaled_object
from tests.support.paths import REPO

GPU = QueuePolicy("sample.smol", min=0, max=3, target_backlog=4)
CPU = QueuePolicy("grade", min=1, max=4, target_backlog=20)
POLICY = Policy((GPU, CPU), interval_s=1, scale_up_cooldown_s=30, scale_down_cooldown_s=60)


class Ticks:
    """Feeds depths to ``decide`` at given times, remembering between ticks like the controller."""

    def __init__(self, queue: QueuePolicy, start: int = 0, policy: Policy = POLICY):
        self.queue, self.policy, self.memory = queue, policy, Memory(start)

    def at(self, now: float, depth: int):
        decision, self.memory = decide(self.policy, self.queue, depth, self.memory, now)
        return decision


def test_desired_is_the_backlog_over_the_target_clamped_to_min_and_max() -> None:
    assert [GPU.wanted(d) for d in (0, 1, 4, 5, 8, 9, 12, 13, 1000)] == [0, 1, 1, 2, 2, 3, 3, 3, 3]
    assert [CPU.wanted(d) for d in (0, 1, 20, 21, 100)] == [1, 1, 1, 2, 4]


def test_a_backlog_scales_up_at_once_to_the_policy_number_then_waits_for_the_cooldown() -> None:
    ticks = Ticks(GPU)
    first = ticks.at(0, 9)
    assert (first.action, first.previous, first.desired) == ("scale-up", 0, 3)
    assert "depth 9 / target 4 -> 3" in first.reason and first.changed
    grown = Ticks(GPU)
    assert grown.at(0, 4).desired == 1
    held = grown.at(10, 12)  # more work, within the scale-up cooldown
    assert (held.action, held.desired, held.wanted) == ("hold", 1, 3) and "scale-up cooldown, 20s left" in held.reason
    assert grown.at(29.9, 12).desired == 1
    assert grown.at(30, 12).desired == 3


def test_scale_down_waits_until_fewer_were_enough_for_the_whole_cooldown() -> None:
    ticks = Ticks(GPU)
    ticks.at(0, 12)
    assert ticks.at(100, 0).action == "hold"  # below since 100
    assert ticks.at(130, 0).desired == 3
    assert ticks.at(140, 9).action == "steady"  # back up: the lull is forgotten
    assert ticks.at(150, 0).action == "hold"
    assert "scale-down cooldown, 60s left" in ticks.at(150, 0).reason
    assert ticks.at(209, 0).desired == 3
    down = ticks.at(210, 0)
    assert (down.action, down.previous, down.desired) == ("scale-down", 3, 0)
    assert "for 60s" in down.reason


def test_scale_down_goes_to_what_the_latest_depth_needs() -> None:
    ticks = Ticks(GPU)
    ticks.at(0, 12)
    ticks.at(100, 8)
    assert ticks.at(160, 4).desired == 1


def test_cpu_queues_keep_their_floor_and_gpu_queues_scale_to_zero() -> None:
    cpu = Ticks(CPU, start=1)
    assert cpu.at(0, 0).action == "steady" and cpu.at(1000, 0).desired == 1
    gpu = Ticks(GPU, start=1)
    gpu.at(0, 0)
    assert gpu.at(60, 0).desired == 0


def test_a_count_outside_the_policy_is_corrected_without_cooldown() -> None:
    below = Ticks(CPU, start=0).at(0, 50)
    assert (below.action, below.desired) == ("scale-up", 3) and "0 is below the floor" in below.reason
    above = Ticks(GPU, start=7).at(0, 0)
    assert (above.action, above.desired) == ("scale-down", 0) and "above the ceiling" in above.reason


def test_zero_cooldowns_follow_the_depth_every_tick() -> None:
    policy = Policy((GPU,), scale_up_cooldown_s=0, scale_down_cooldown_s=0)
    ticks = Ticks(GPU, policy=policy)
    assert [ticks.at(t, d).desired for t, d in enumerate((4, 12, 8, 0, 5))] == [1, 3, 2, 0, 2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_policy_file_with_defaults_args_and_names(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, """
interval_s: 2
scale_up_cooldown_s: 5
scale_down_cooldown_s: 7.5
queues:
  sample.smol: {min: 0, max: 2, target_backlog: 4, args: [--engine, echo, -o, delay_s=0.05]}
  sample.qwen: {args: "--weights /models/qwen -o tensor_parallel_size=2", service: sample-qwen, deployment: qwen-gpu}
  grade: {min: 1, max: 4, target_backlog: 20}
  sandbox:
"""))
    assert (policy.interval_s, policy.scale_up_cooldown_s, policy.scale_down_cooldown_s) == (2, 5, 7.5)
    smol, qwen, grade, sandbox = policy.queues
    assert smol.worker_command() == ["worker", "sample", "--model", "smol", "--engine", "echo", "-o", "delay_s=0.05"]
    assert qwen.worker_command()[-4:] == ["--weights", "/models/qwen", "-o", "tensor_parallel_size=2"]
    assert (qwen.min, qwen.max, qwen.target_backlog) == (0, 4, 4)  # the GPU defaults
    assert (sandbox.min, sandbox.target_backlog) == (1, 20)  # the CPU defaults
    assert grade.worker_command() == ["worker", "grade"]
    assert (smol.compose_service(), qwen.compose_service(), grade.compose_service()) == (
        "sample", "sample-qwen", "grade")
    assert (smol.deployment_name(), qwen.deployment_name()) == ("boundary-sample-smol", "qwen-gpu")


@pytest.mark.parametrize("text, message", [
    ("queues: {grade: {min: 3, max: 2}}", "policy.yaml:1: queues.grade: min (3) is above max (2)"),
    ("queues:\n  grade: {min: -1}", "policy.yaml:2: queues.grade.min: must be at least 0, got -1"),
    ("queues: {grade: {target_backlog: 0}}", "queues.grade.target_backlog: must be at least 1, got 0"),
    ("queues: {grade: {max: 0, min: 0}}", "queue 'grade': max must be at least 1"),
    ("queues: {gpu: {min: 0}}", "queues.gpu: unknown queue 'gpu' (known: sample.MODEL, grade, sandbox)"),
    ("queues: {'sample.': {}}", "unknown queue 'sample.'"),
    ("queues: {grade: {mx: 2}}", "queues.grade: unknown key 'mx'"),
    ("queues: {grade: {min: two}}", "queues.grade.min: must be a whole number, got 'two'"),
    ("interval_s: -1\nqueues: {grade: {}}", "interval_s: must be at least 0.1, got -1"),
    ("scale_down_cooldown_s: soon\nqueues: {grade: {}}", "scale_down_cooldown_s: must be a number of seconds"),
    ("queues: {}", "queues: missing or empty"),
    ("queue: {grade: {}}", "unknown key 'queue'"),
    ("queues: {sample.a: {}, sample.b: {}}", "queues 'sample.a' and 'sample.b' both run as Compose service 'sample'"),
    ("queues: {sample.a: {deployment: Big_Name}}", "is not a Kubernetes name"),
    ("queues: [grade", "not valid YAML"),
])
def test_an_invalid_policy_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        load_policy(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_flags_add_to_and_override_the_file() -> None:
    base = parse_policy({"interval_s": 3, "queues": {"grade": {"min": 1, "max": 2, "args": ["--concurrency", "2"]}}})
    policy = build_policy(base, ["grade=2:5", "sample.m=0:2:8"], scale_down_cooldown_s=1)
    grade, sample = policy.queues
    assert (grade.min, grade.max, grade.target_backlog, grade.args) == (2, 5, 20, ("--concurrency", "2"))
    assert (sample.min, sample.max, sample.target_backlog) == (0, 2, 8)
    assert (policy.interval_s, policy.scale_down_cooldown_s) == (3, 1)


@pytest.mark.parametrize("flag, message", [
    ("grade=3:2", "queue 'grade': min (3) is above max (2)"),
    ("grade=-1:2", "min must be at least 0, got -1"),
    ("grade=1:2:0", "target_backlog must be at least 1"),
    ("gpu=0:1", "unknown queue 'gpu'"),
    ("grade=1", "--queue takes NAME=MIN:MAX[:TARGET_BACKLOG]"),
    ("grade=a:2", "min must be a whole number"),
])
def test_invalid_queue_flags(flag: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_policy(None, [flag])
    assert message in str(caught.value)


def test_no_queue_at_all_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no queues to scale"):
        build_policy(None, [])


@pytest.mark.parametrize("args, message", [
    (["--queue", "grade=3:2", "--dry-run", "--once"], "Error: queue 'grade': min (3) is above max (2)"),
    (["--queue", "nope=0:1", "--dry-run", "--once"],
     "Error: unknown queue 'nope' (known: sample.MODEL, grade, sandbox)"),
    (["--queue", "grade=-2:1", "--dry-run", "--once"], "Error: --queue grade=-2:1: min must be at least 0, got -2"),
    (["--queue", "grade=1:2", "--once"], "Error: --once with the local backend needs --dry-run"),
    (["POLICY", "--dry-run", "--once"],
     "Error: queue 'sample.m': `boundary worker sample --model m --engin echo` is not valid"),
    (["POLICY", "--queue", "grade=1:2:3:4", "--dry-run", "--once"],
     "Error: --queue takes NAME=MIN:MAX[:TARGET_BACKLOG]"),
    (["--queue", "grade=1:2", "--interval", "-1", "--once"], "Invalid value for '--interval'"),
    (["--dry-run", "--once"], "Error: no queues to scale"),
    (["--queue", "grade=1:2", "--dry-run", "--once"], "Error: broker redis://127.0.0.1:1/0 does not answer"),
])
def test_bad_input_to_the_command_is_a_one_line_error(tmp_path: Path, args: list[str], message: str) -> None:
    policy = write(tmp_path, "queues: {sample.m: {args: [--engin, echo]}}")
    args = [str(policy) if a == "POLICY" else a for a in args]
    result = CliRunner().invoke(cli, ["autoscale", "run", *args], env={"BOUNDARY_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_pool_autoscale_option_is_max_comma_min() -> None:
    assert parse_pool_autoscale("8,2") == (8, 2)
    assert parse_pool_autoscale("4") == (4, 1)
    for bad in ("2,4", "0,0", "x,1", "4,0"):
        with pytest.raises(ConfigError):
            parse_pool_autoscale(bad)
    result = CliRunner().invoke(cli, ["worker", "grade", "--autoscale", "2,4", "--broker-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 1 and "Error: --autoscale 2,4: need 1 <= MIN <= MAX" in result.output
    both = CliRunner().invoke(cli, ["worker", "sandbox", "--autoscale", "4,1", "--concurrency", "2",
                                    "--broker-url", "x"])
    assert both.exit_code == 1 and "give --concurrency or --autoscale, not both" in both.output


# KEDA's field names (keda.sh/docs: ScaledObject specification; scalers: Redis Lists)
SCALED_OBJECT = {"apiVersion", "kind", "metadata", "spec"}
SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
        "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
SCALE_TARGET = {"apiVersion", "kind", "name", "envSourceContainerName"}
ADVANCED = {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"}
HPA_CONFIG = {"name", "behavior"}
HPA_BEHAVIOR = {"scaleUp", "scaleDown"}
HPA_RULES = {"stabilizationWindowSeconds", "selectPolicy", "policies"}
HPA_POLICY = {"type", "value", "periodSeconds"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
REDIS_METADATA = {"address", "host", "port", "usernameFromEnv", "passwordFromEnv", "listName", "listLength",
                  "activationListLength", "enableTLS", "unsafeSsl", "databaseIndex", "addressFromEnv", "hostFromEnv",
                  "portFromEnv"}


def check_scaled_object(obj: dict) -> None:
    assert set(obj) == SCALED_OBJECT
    assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
    spec = obj["spec"]
    assert set(spec) <= SPEC and set(spec["scaleTargetRef"]) <= SCALE_TARGET and spec["scaleTargetRef"]["name"]
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert all(isinstance(spec[k], int)
               for k in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"))
    advanced = spec["advanced"]
    assert set(advanced) <= ADVANCED and set(advanced["horizontalPodAutoscalerConfig"]) <= HPA_CONFIG
    behavior = advanced["horizontalPodAutoscalerConfig"]["behavior"]
    assert set(behavior) <= HPA_BEHAVIOR
    for rules in behavior.values():
        assert set(rules) <= HPA_RULES and 0 <= rules["stabilizationWindowSeconds"] <= 3600
        for policy in rules.get("policies", []):
            assert set(policy) == HPA_POLICY and 0 < policy["periodSeconds"] <= 1800
    for trigger in spec["triggers"]:
        assert set(trigger) <= TRIGGER and trigger["type"] == "redis"
        meta = trigger["metadata"]
        assert set(meta) <= REDIS_METADATA and {"listName", "listLength"} <= set(meta)
        assert all(isinstance(v, str) for v in meta.values())  # KEDA's metadata is a map of strings


def test_kubernetes_manifests_are_keda_scaled_objects_with_the_redis_list_scaler() -> None:
    policy = Policy((GPU, CPU), interval_s=15, scale_up_cooldown_s=30, scale_down_cooldown_s=600)
    objects = list(yaml.safe_load_all(manifests(policy, "redis://redis:6379/2", namespace="boundary")))
    assert len(objects) == 2
    for obj in objects:
        check_scaled_object(obj)
    gpu, cpu = (o["spec"] for o in objects)
    assert objects[0]["metadata"] == {"name": "boundary-sample-smol", "namespace": "boundary",
                                      "labels": {"app.kubernetes.io/part-of": "boundary",
                                                 "boundary/queue": "sample-smol"}}
    assert gpu["scaleTargetRef"] == {"name": "boundary-sample-smol"}
    assert (gpu["minReplicaCount"], gpu["maxReplicaCount"],
            cpu["minReplicaCount"], cpu["maxReplicaCount"]) == (0, 3, 1, 4)
    assert (gpu["pollingInterval"], gpu["cooldownPeriod"]) == (15, 600)
    assert gpu["triggers"][0]["metadata"] == {"address": "redis:6379", "databaseIndex": "2", "listName": "sample.smol",
                                              "listLength": "4", "activationListLength": "0"}
    behavior = gpu["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 3, "periodSeconds": 30}]


def test_kubernetes_manifests_never_carry_the_broker_password() -> None:
    obj = scaled_object(POLICY, GPU, "rediss://:s3cret@redis.internal:6380")
    check_scaled_object(obj)
    meta = obj["spec"]["triggers"][0]["metadata"]
    assert meta == {"address": "redis.internal:6380", "databaseIndex": "0", "enableTLS": "true",
                    "passwordFromEnv": "BOUNDARY_REDIS_PASSWORD", "listName": "sample.smol", "listLength": "4",
                    "activationListLength": "0"}
    assert "s3cret" not in yaml.safe_dump(obj)
    with pytest.raises(ConfigError, match="redis:// broker URL"):
        scaled_object(POLICY, GPU, "amqp://rabbit")


def test_the_kubernetes_backend_prints_manifests(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["autoscale", "run", "--queue", "sample.smol=0:2:4", "--queue", "grade=1:3",
                                      "--backend", "kubernetes", "--broker-url", "redis://redis:6379/0"])
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.output))
    assert [o["metadata"]["name"] for o in objects] == ["boundary-sample-smol", "boundary-grade"]
    for obj in objects:
        check_scaled_object(obj)


class Recorder:
    """Stands in for the docker CLI (no Docker engine here): records commands, answers `ps`."""

    def __init__(self, running: int = 0, fail: bool = False):
        self.commands: list[list[str]] = []
        self.running, self.fail = running, fail

    def __call__(self, argv):
        self.commands.append(list(argv))
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, "", "Cannot connect to the Docker daemon\n")
        if "ps" in argv:
            return subprocess.CompletedProcess(argv, 0, "".join(f"c{i}\n" for i in range(self.running)), "")
        self.running = int(argv[argv.index("--scale") + 1].split("=")[1])
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_compose_commands_scale_one_service_with_the_drain_timeout() -> None:
    recorder = Recorder(running=1)
    compose = ComposeBackend("deploy/compose.yml", "boundary", ("docker", "compose"), drain_timeout_s=900,
                             runner=recorder)
    assert compose.running(CPU) == 1
    compose.scale(CPU, 3)
    assert recorder.commands == [
        ["docker", "compose", "--file", "deploy/compose.yml", "--project-name", "boundary", "ps", "--quiet", "--status",
         "running", "grade"],
        ["docker", "compose", "--file", "deploy/compose.yml", "--project-name", "boundary", "up", "--detach",
         "--no-deps", "--no-recreate", "--timeout", "900", "--scale", "grade=3", "grade"],
    ]
    assert compose.running(CPU) == 3
    compose.scale(CPU, 3)  # nothing to do
    assert len(recorder.commands) == 3
    assert compose.up_command(GPU, 0)[-3:] == ["--scale", "sample=0", "sample"]
    assert compose.plan(GPU, 0, 2).startswith("run docker compose --file deploy/compose.yml")


def test_compose_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    compose = ComposeBackend(runner=Recorder(fail=True))
    caplog.set_level("INFO", logger="boundary.autoscale")
    for _ in range(3):
        assert compose.running(CPU) is None
    compose.scale(CPU, 2)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all("Cannot connect to the Docker daemon" in e for e in errors)  # one ps, one up
    assert " ps " in errors[0] and " up " in errors[1]
    compose.runner = Recorder()
    compose.scale(CPU, 2)  # retried: the failed attempt did not count
    assert compose.runner.commands[0][-3:] == ["--scale", "grade=2", "grade"]


def test_default_compose_services_exist_in_docker_compose_yml() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for queue in (GPU, CPU, QueuePolicy("sandbox", 1, 2, 20)):
        assert queue.compose_service() in services
        assert services[queue.compose_service()]["command"][:2] == ["worker", queue.worker_command()[1]]


def test_compose_dry_run_prints_the_command(redis_url: str) -> None:
    result = CliRunner().invoke(cli, ["autoscale", "run", "--queue", "grade=2:4", "--backend", "compose", "--dry-run",
                                      "--once", "--compose-command", "docker-compose", "--broker-url", redis_url])
    assert result.exit_code == 0, result.output
    assert "grade: steady at 2 workers: depth 0 / target 20 -> 0, held to min 2" in result.output
    assert ("grade: dry run: would run docker-compose --file docker-compose.yml up --detach --no-deps --no-recreate "
            f"--timeout {int(defaults.AUTOSCALE_DRAIN_TIMEOUT_S)} --scale grade=2 grade") in result.output


def test_the_readme_policy_and_autoscale_commands_are_valid(tmp_path: Path) -> None:
    section = (REPO / "README.md").read_text().split("#### Autoscaling")[1].split("### Defaults")[0]
    policy_text = section.split("```yaml")[1].split("```")[0]
    policy = load_policy(write(tmp_path, policy_text))
    assert policy.names() == ["sample.qwen-base", "grade"]
    check_worker_args(policy)
    commands = [line.split("#")[0].split(">")[0].split()
                for line in section.split("```sh")[1].split("```")[0].splitlines()
                if line.startswith("boundary ")]
    assert len(commands) == 6
    for command in commands:
        args = [str(tmp_path / "policy.yaml") if a == "policy.yaml" else a for a in command[1:]]
        result = CliRunner().invoke(cli, [*args, "--help"])  # parses every option given before --help
        assert result.exit_code == 0, (command, result.output)
