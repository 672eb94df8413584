"""The suite's configuration: shared fixtures (registered from tests/support/), the benchmark
data and model cache folders, strict mode, and the rule that a test using a real model is
marked ``slow``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boundary.api.config import default_cache_dir
from tests.support.paths import DATA_DIR

pytest_plugins = ["tests.support.services", "tests.support.models", "tests.support.fleet"]

STRICT = os.environ.get("BOUNDARY_TEST_STRICT") == "1"
"""Set by scripts/test, which installs and starts everything the suite needs: there a test that
would skip (no PostgreSQL, no Redis, no bwrap namespaces, no model weights...) fails instead,
so that a broken setup cannot pass for a green run."""

MODEL_FIXTURES = frozenset({"cache_dir", "vllm_engine", "vllm_token_engine", "hf_model", "hf_engine", "vllm_server"})
"""Fixtures that load a real model (or hand out the folder its weights are cached in): a test
using one takes minutes, so it must be marked ``slow`` and stay out of ``pytest -m "not slow"``."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201 - a hook wrapper
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"would have skipped, but scripts/test sets up everything the suite needs: {reason}"


LAST_FIXTURES = frozenset({"vllm_token_engine"})
"""Fixtures whose tests run after all others: the vLLM engine in processed-logprobs mode replaces
the session's raw one in the process cache (one model a process), so running its tests last
loads each mode once instead of switching back and forth."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a test that loads a real model unless it is marked slow (checked before
    ``-m`` deselects anything, so the fast tier cannot hide a mistake); then move the tests that
    use a LAST_FIXTURES engine to the end, keeping the order within each group."""
    unmarked = [item.nodeid for item in items
                if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("tests that load a real model must be marked slow: " + ", ".join(unmarked))
    items.sort(key=lambda item: bool(LAST_FIXTURES & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "gsm8k_test.jsonl").is_file():
        pytest.skip(f"benchmark data not found in {DATA_DIR} (set BOUNDARY_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ.get("BOUNDARY_CACHE_DIR") or default_cache_dir())
